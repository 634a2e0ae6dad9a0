"""Failure messages of the item tests, and how an item test fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from .data import Item
    from .scoring import ItemScore


def explain(item: Item, score: ItemScore, verdict: str) -> str:
    """E.g. "privacy-unlearn-007: the model still recalls the answer (token accuracy 1.000
    over 14 answer tokens) to 'What is ...?' -> '...'"."""
    return (
        f"{item.id}: the model {verdict} the answer (token accuracy "
        f"{score.token_accuracy:.3f} over {score.answer_tokens} answer tokens) to "
        f"{item.record.question!r} -> {item.record.answer!r}"
    )


def fail_item(message: str) -> NoReturn:
    """Fail the current item test with ``message`` as its whole failure report.

    Item tests fail by the hundred, and their message already says which item, what the
    model did and by how much. pytest's traceback of a three-line test would add a screen of
    the same source lines per failure, and formatting it costs more than the rest of the
    test (benchmarks/pytest_overhead.py).
    """
    __tracebackhide__ = True  # pytest reports the failure at the line of the test
    pytest.fail(message, pytrace=False)
