"""Prompt and generator variants per collection (canaries): which variant answers a question, the same one for a
whole conversation; the configuration checked at start, and each change of it recorded in the audit log.

The split is a hash, not a coin: the same conversation (or, outside a conversation, the same key asking the same
question) always lands in the same variant, in every process and after every restart, and nothing is stored to
remember it. Promoting or rolling back is a change of settings (RAG_VARIANTS__..., RAG_ANSWER__PROMPT), which the
next start finds different from the last audited one and records.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from kernel.errors import InvalidInput
from kernel.ops_settings import VariantsSettings
from kernel.records import AuditQuery, NewAuditEntry
from kernel.settings import Settings
from rag.prompts.registry import load_prompt
from rag.storage.audit import AuditLog

log = logging.getLogger(__name__)

CONTROL = "control"
AUDIT_ACTION = "variants.config"


@dataclass(frozen=True)
class Assignment:
    """The variant a question is answered by: `name` None when none of its collections runs a variant."""

    name: str | None = None
    collection: str | None = None
    prompt: str | None = None  # the candidate's prompt id, replacing RAG_ANSWER__PROMPT
    generator: str | None = None  # the candidate's generator, for a request that names none


def bucket(salt: str, collection: str, unit: str) -> float:
    """A number in [0, 1) fixed by the unit: uniform over units, independent between collections."""
    digest = hashlib.sha256(f"{salt}\x1f{collection}\x1f{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def sticky_unit(conversation_id: str | None, key_id: str | None, question: str) -> str:
    """What stays in one variant: a conversation; outside one, a key's question (however it is spaced or cased)."""
    if conversation_id:
        return f"conversation:{conversation_id}"
    return f"question:{key_id or ''}:{' '.join(question.lower().split())}"


def assign(cfg: VariantsSettings, collections: list[str], unit: str) -> Assignment:
    """The first of the question's collections that runs a variant decides (one experiment per answer)."""
    for collection in collections:
        variant = cfg.collections.get(collection)
        if variant is None:
            continue
        if bucket(cfg.salt, collection, unit) < variant.share:
            return Assignment(variant.name, collection, variant.prompt, variant.generator)
        return Assignment(CONTROL, collection)
    return Assignment()


def describe(settings: Settings) -> dict[str, object]:
    """The configuration an answer's variant depends on, with each prompt's version: what the audit log keeps."""
    extra = settings.prompts.directory

    def version(prompt_id: str) -> str:
        return load_prompt(prompt_id, extra=extra).version

    return {
        "prompt": {"id": settings.answer.prompt, "version": version(settings.answer.prompt)},
        "llm_model": settings.llm.model if settings.llm.base_url else None,
        "salt_sha256": hashlib.sha256(settings.variants.salt.encode()).hexdigest()[:12],
        "collections": {
            name: {
                **v.model_dump(),
                "prompt_version": version(v.prompt) if v.prompt else None,
            }
            for name, v in sorted(settings.variants.collections.items())
        },
    }


def check(settings: Settings) -> dict[str, object]:
    """Every prompt and generator the configuration names must exist: refused at start, naming the setting."""
    problems = []
    for prompt_id, where in [
        (settings.answer.prompt, "RAG_ANSWER__PROMPT"),
        (settings.answer.guarded_prompt, "RAG_ANSWER__GUARDED_PROMPT"),
        *((v.prompt, f"RAG_VARIANTS__COLLECTIONS__{c}__PROMPT") for c, v in settings.variants.collections.items()),
    ]:
        if prompt_id is None:
            continue
        try:
            load_prompt(prompt_id, extra=settings.prompts.directory)
        except InvalidInput as exc:
            problems.append(f"{where}: {exc.message}")
    for name, variant in settings.variants.collections.items():
        if variant.generator == "llm" and not settings.has_llm:
            problems.append(
                f"RAG_VARIANTS__COLLECTIONS__{name}__GENERATOR=llm needs RAG_LLM__BASE_URL or RAG_GATEWAY__ENDPOINTS"
            )
    if problems:
        raise RuntimeError("invalid variant settings:\n  " + "\n  ".join(problems))
    return describe(settings)


async def audit_changes(settings: Settings, audit: AuditLog) -> bool:
    """Record the variant configuration when it differs from the last one recorded; True if it was recorded.

    A promotion or a roll-back is a settings change and a restart: this makes it an entry of the hash-chained log
    (`rag audit` / GET /v1/audit, action variants.config), with the prompt versions it refers to."""
    config = json.dumps(check(settings), sort_keys=True, separators=(",", ":"))
    if not settings.audit.enabled:
        return False
    last = None
    after = 0
    while batch := await audit.query(AuditQuery(action=AUDIT_ACTION, after_seq=after, limit=1000)):
        last, after = batch[-1], batch[-1].seq
    if last is not None and last.detail == config:
        return False
    if last is None and not settings.variants.collections:
        return False  # never any experiment: nothing to record (a fresh service's log starts with its requests)
    await audit.append(
        NewAuditEntry(action=AUDIT_ACTION, method="START", path="settings", outcome="ok", status=0, detail=config)
    )
    log.info("variant configuration changed; recorded in the audit log: %s", config)
    return True
