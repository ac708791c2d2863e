"""Variants: the sticky split, its settings, the comparison's intervals, and the prompt listing."""

from __future__ import annotations

import math
import statistics
import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from evals.variants import compare_variants, mean_ci, wilson
from kernel.ops_settings import VariantSettings, VariantsSettings
from kernel.settings import SettingsError, load_settings
from rag.prompts.registry import list_prompts, load_prompt
from rag.variants import CONTROL, assign, check, sticky_unit

CONVERSATIONS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"conversation-{i}")) for i in range(1000)]


def _config(share: float, salt: str = "") -> VariantsSettings:
    return VariantsSettings(
        collections={"kb": VariantSettings(prompt="grounded_answer_guarded", share=share)}, salt=salt
    )


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_a_split_of_1000_conversations_lands_within_tolerance(share: float):
    cfg = _config(share)
    names = [assign(cfg, ["kb"], sticky_unit(c, None, "q")).name for c in CONVERSATIONS]
    candidates = names.count("candidate")
    assert candidates + names.count(CONTROL) == 1000
    # Within 4 standard deviations of the binomial count: a correct split lands outside once in 15,000 salts.
    assert abs(candidates - 1000 * share) < 4 * math.sqrt(1000 * share * (1 - share)), (share, candidates)


def test_the_split_is_sticky_per_conversation_and_independent_of_the_question():
    cfg = _config(0.5)
    for c in CONVERSATIONS[:200]:
        first = assign(cfg, ["kb"], sticky_unit(c, "key1", "When did it open?"))
        later = assign(cfg, ["kb"], sticky_unit(c, "key2", "And how long is it?"))
        assert first == later


def test_outside_a_conversation_the_same_question_of_a_key_stays_in_its_variant():
    cfg = _config(0.5)
    units = [sticky_unit(None, "key1", f"question {i}") for i in range(300)]
    assert [assign(cfg, ["kb"], u).name for u in units] == [
        assign(cfg, ["kb"], sticky_unit(None, "key1", f"  QUESTION   {i} ")).name for i in range(300)
    ]
    assert {assign(cfg, ["kb"], u).name for u in units} == {"candidate", CONTROL}


def test_share_bounds_salt_and_collections():
    assert {assign(_config(0.0), ["kb"], sticky_unit(c, None, "")).name for c in CONVERSATIONS} == {CONTROL}
    assert {assign(_config(1.0), ["kb"], sticky_unit(c, None, "")).name for c in CONVERSATIONS} == {"candidate"}
    # Not in the experiment at all: no variant is recorded.
    assert assign(_config(0.5), ["other"], "x").name is None
    # The first collection with a variant decides; its candidate carries the prompt.
    hit = next(c for c in CONVERSATIONS if assign(_config(0.5), ["kb"], sticky_unit(c, None, "")).name != CONTROL)
    chosen = assign(_config(0.5), ["other", "kb"], sticky_unit(hit, None, ""))
    assert chosen.collection == "kb" and chosen.prompt == "grounded_answer_guarded"
    # Another salt reshuffles which conversations are in.
    a = [assign(_config(0.5), ["kb"], sticky_unit(c, None, "")).name for c in CONVERSATIONS]
    b = [assign(_config(0.5, "again"), ["kb"], sticky_unit(c, None, "")).name for c in CONVERSATIONS]
    assert 300 < sum(x != y for x, y in zip(a, b, strict=True)) < 700


def test_variant_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("RAG_VARIANTS__COLLECTIONS__KB__PROMPT", "grounded_answer_guarded")
    monkeypatch.setenv("RAG_VARIANTS__COLLECTIONS__KB__SHARE", "0.25")
    variant = load_settings().variants.collections["kb"]
    assert (variant.prompt, variant.share, variant.name) == ("grounded_answer_guarded", 0.25, "candidate")


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ({"share": 0.5}, "needs a candidate prompt or generator"),
        ({"prompt": "x", "share": 1.5}, "less than or equal to 1"),
        ({"prompt": "x", "shaer": 0.5}, "Extra inputs are not permitted"),
        ({"prompt": "x", "name": "control"}, "name the candidate otherwise"),
        ({"generator": "gpt"}, "RAG_VARIANTS__COLLECTIONS__KB__GENERATOR"),
    ],
)
def test_bad_variant_settings_are_refused_with_the_setting_named(variant: dict[str, Any], message: str):
    with pytest.raises(SettingsError, match=message):
        load_settings(variants={"collections": {"kb": variant}})


def test_a_variant_naming_a_missing_prompt_or_an_unconfigured_llm_is_refused_at_start():
    settings = load_settings(variants={"collections": {"kb": {"prompt": "grounded_answr", "share": 0.1}}})
    with pytest.raises(RuntimeError, match=r"RAG_VARIANTS__COLLECTIONS__kb__PROMPT: unknown prompt 'grounded_answr'"):
        check(settings)
    settings = load_settings(variants={"collections": {"kb": {"generator": "llm", "share": 0.1}}})
    with pytest.raises(RuntimeError, match="GENERATOR=llm needs RAG_LLM__BASE_URL"):
        check(settings)
    described = check(load_settings(variants={"collections": {"kb": {"prompt": "grounded_answer_guarded"}}}))
    assert described["collections"]["kb"]["prompt_version"] == load_prompt("grounded_answer_guarded").version


# ----- intervals -----------------------------------------------------------------------------------------------------
def test_wilson_interval_matches_the_textbook_value():
    # Wilson 95% for 8 of 10 is [0.4902, 0.9433] (Newcombe 1998, method 3).
    got = wilson(8, 10)
    assert got["rate"] == 0.8
    assert got["lo"] == pytest.approx(0.4902, abs=1e-4) and got["hi"] == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 5)["lo"] == 0.0 and wilson(0, 0)["rate"] is None


def test_mean_interval_is_normal_around_the_mean():
    values = [0.2, 0.4, 0.6, 0.8]
    got = mean_ci(values)
    half = 1.959964 * statistics.stdev(values) / 2
    assert got["mean"] == 0.5
    assert got["lo"] == pytest.approx(0.5 - half, abs=1e-4) and got["hi"] == pytest.approx(0.5 + half, abs=1e-4)
    assert mean_ci([0.5])["lo"] is None and mean_ci([])["mean"] is None


@dataclass
class _Score:
    faithfulness: float | None
    status: str = "done"

    def metric(self, name: str) -> float | None:
        return self.faithfulness if name == "faithfulness" else None


@dataclass
class _Row:
    id: str
    variant: str | None
    faith: float
    abstained: bool = False
    prompt_version: str = "v1"
    generator: str = "extractive"
    usage: dict[str, Any] = field(default_factory=lambda: {"prompt_tokens": 100, "completion_tokens": 20})
    timings_ms: dict[str, Any] = field(default_factory=lambda: {"total": 50.0})

    @property
    def score(self) -> _Score:
        return _Score(self.faith)


def test_compare_variants_marks_a_real_difference_and_leaves_noise_unmarked():
    control = [_Row(f"c{i}", CONTROL, 0.9 + (i % 3) * 0.02) for i in range(60)]
    worse = [_Row(f"w{i}", "worse", 0.6 + (i % 3) * 0.02, abstained=i % 2 == 0) for i in range(60)]
    same = [_Row(f"s{i}", "same", 0.9 + ((i + 1) % 3) * 0.02) for i in range(60)]
    outside = [_Row("o", None, 0.0)]
    out = {v["variant"]: v for v in compare_variants(control + worse + same + outside, {"c1": []})}
    assert list(out) == [CONTROL, "same", "worse"] and out[CONTROL]["count"] == 60
    assert "vs_control" not in out[CONTROL]
    assert out["worse"]["vs_control"]["faithfulness"]["significant"] is True
    assert out["worse"]["vs_control"]["faithfulness"]["diff"] == pytest.approx(-0.3, abs=1e-3)
    assert out["worse"]["vs_control"]["abstention"]["significant"] is True
    assert out["same"]["vs_control"]["faithfulness"]["significant"] is False
    assert out["same"]["tokens"]["mean"] == 120 and out["same"]["latency_ms"]["mean"] == 50
    assert out["same"]["cost"]["mean"] is None  # no price table: no cost, not 0
    assert out["same"]["feedback_up"]["n"] == 0


# ----- prompts -------------------------------------------------------------------------------------------------------
def test_prompt_listing_has_versions_descriptions_and_variables(tmp_path):
    shipped = {p.id: p for p in list_prompts()}
    assert set(shipped) >= {"grounded_answer", "grounded_answer_guarded", "condense_question"}
    answer = shipped["grounded_answer"]
    assert answer.version == load_prompt("grounded_answer").version and answer.source == "shipped"
    assert answer.variables == ["filename", "location", "n", "question", "sources", "text"]
    assert "any edit here is a new prompt version" in answer.description
    (tmp_path / "mine.toml").write_text(
        'id = "mine"\ndescription = "Mine."\nsystem = "s"\nuser = "{question} {sources}"\nsource = "{text}"\n'
    )
    (tmp_path / "grounded_answer.toml").write_text('id = "grounded_answer"\nsystem = ""\nuser = ""\nsource = ""\n')
    listed = {p.id: p for p in list_prompts(extra=tmp_path)}
    assert listed["mine"].source == "directory" and listed["mine"].description == "Mine."
    assert listed["mine"].variables == ["question", "sources", "text"]
    # A shipped name is never shadowed by the directory: the listing shows what load_prompt loads.
    assert listed["grounded_answer"].version == answer.version == load_prompt("grounded_answer", extra=tmp_path).version
    assert load_prompt("mine", extra=tmp_path).version == listed["mine"].version
