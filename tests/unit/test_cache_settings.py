"""The cache settings: wrong values are refused at start with the variable to fix; the answer key normalises."""

from __future__ import annotations

import pytest

from kernel.cache_stats import CacheStats
from kernel.settings import SettingsError, load_settings


def test_an_opt_out_that_is_no_collection_name_is_refused() -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(cache={"answer_opt_out": ["ok", "Not A Name"]})
    message = str(err.value)
    assert "RAG_CACHE__ANSWER_OPT_OUT" in message and "'Not A Name' is not a collection name" in message


@pytest.mark.parametrize(
    ("field", "value"), [("query_embeddings", -1), ("answer_ttl_seconds", 0), ("answers", "sometimes")]
)
def test_out_of_range_values_are_refused(field: str, value: object) -> None:
    with pytest.raises(SettingsError, match=f"RAG_CACHE__{field.upper()}"):
        load_settings(cache={field: value})


def test_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CACHE__ANSWER_OPT_OUT", '["news", "hr"]')
    monkeypatch.setenv("RAG_CACHE__QUERY_EMBEDDINGS", "0")
    cfg = load_settings().cache
    assert (cfg.answer_opt_out, cfg.query_embeddings, cfg.embeddings, cfg.answers) == (["news", "hr"], 0, True, True)


def test_question_normalisation() -> None:
    from rag.answer_cache import normalise

    assert (
        normalise("  When did the bridge\u00a0OPEN?? ")
        == normalise("when did the bridge open")
        == ("when did the bridge open")
    )
    assert normalise("When did the bridge open?") != normalise("When did the bridge close?")


def test_stats_snapshot_counts_per_cache() -> None:
    stats = CacheStats()
    stats.hit("answers")
    stats.count("embeddings", hits=3, misses=2)
    stats.miss("answers")
    assert stats.snapshot() == {"answers": {"hits": 1, "misses": 1}, "embeddings": {"hits": 3, "misses": 2}}
