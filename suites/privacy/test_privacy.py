"""KnowUnDo privacy: forget each author's parents, email and address; keep name, genre,
birth and awards.

One test per val item. The pass rate of ``test_forgets`` is Unlearn Success and that of
``test_retains`` is Retention Success (paper Eq. 3-4, under --unlearn-criterion).
"""

import pytest

from pytest_unlearn.assertions import explain, fail_item


@pytest.mark.knowundo("privacy", scope="unlearn")
def test_forgets(knowundo_item, item_score, recalls):
    if recalls(item_score):
        fail_item(explain(knowundo_item, item_score, "still recalls"))


@pytest.mark.knowundo("privacy", scope="retention")
def test_retains(knowundo_item, item_score, recalls):
    if not recalls(item_score):
        fail_item(explain(knowundo_item, item_score, "no longer recalls"))
