"""Failure messages of the item tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .data import Item
    from .scoring import ItemScore


def explain(item: Item, score: ItemScore, verdict: str) -> str:
    """E.g. "privacy-unlearn-007: the model still recalls the answer (token accuracy 1.000
    over 14 answer tokens) to 'What is ...?' -> '...'"."""
    return (f"{item.id}: the model {verdict} the answer (token accuracy "
            f"{score.token_accuracy:.3f} over {score.answer_tokens} answer tokens) to "
            f"{item.record.question!r} -> {item.record.answer!r}")
