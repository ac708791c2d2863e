"""What models spend for an answer beside generating it: a judge scoring it, an LLM rewriting a chat follow-up.
Storage keeps each as a `model_usage` row; cost and budgets add them to the answer's own tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

# What a model spent tokens on for an answer beside generating it (the `role` of a `model_usage` row).
ModelRole = Literal["judge", "rewrite"]
MODEL_ROLES: tuple[ModelRole, ...] = get_args(ModelRole)


@dataclass(frozen=True)
class ModelTokens:
    """Tokens a model spent for an answer beside generating it: a judge scoring it (each scoring's, so a rescore
    adds to the cost), an LLM rewriting the chat follow-up it answers."""

    model: str
    prompt_tokens: int
    completion_tokens: int
