"""Settings of token costs (issue 11, Cost): the price table that turns the tokens stored with each answer into
money, in `GET /v1/usage` and in cost budgets.

Part of the settings model (`kernel/settings.py` holds the root `Settings`); kept apart so each module stays short.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

ANY_MODEL = "*"


class ModelPrice(BaseModel):
    """What a model's tokens cost, per 1,000 tokens read (`input`, the prompt) and written (`output`)."""

    input: float = Field(ge=0, description="Price of 1,000 prompt tokens.")
    output: float = Field(ge=0, description="Price of 1,000 completion tokens.")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1000


class CostSettings(BaseModel):
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Per model name as the endpoint reports it (the answers' `model`), the price per 1,000 tokens "
        f"in and out; {ANY_MODEL!r} prices every model not listed. In the environment a JSON object: "
        'RAG_COST__PRICES=\'{"gpt-4o-mini": {"input": 0.15, "output": 0.6}}\'. A model without a price shows '
        "its tokens without a cost, and counts nothing against cost budgets.",
    )
    currency: str = Field(default="USD", min_length=1, max_length=8, description="The prices' currency, as shown.")

    def price(self, model: str) -> ModelPrice | None:
        return self.prices.get(model) or self.prices.get(ANY_MODEL)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """The cost of these tokens of `model`; None when it has no price (and used any tokens)."""
        if not prompt_tokens and not completion_tokens:
            return 0.0
        price = self.price(model)
        return None if price is None else price.cost(prompt_tokens, completion_tokens)
