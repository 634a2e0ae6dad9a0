"""Relearning attack (privacy): fine-tune the unlearned model briefly on a small part of the
Unlearn Scope's train records (--unlearn-attack), then ask every unlearn val item again.

A method that only hid the knowledge lets it come back; the pass rate of
``test_stays_forgotten`` is ``attack_unlearn_success`` in the summary (gateable).
"""

import pytest

from pytest_unlearn.assertions import explain, fail_item

pytestmark = [pytest.mark.attack, pytest.mark.knowundo("privacy", scope="unlearn")]


def test_stays_forgotten(knowundo_item, attacked_score, recalls):
    if recalls(attacked_score):
        fail_item(
            explain(knowundo_item, attacked_score, "recalls again, after the relearning attack,")
        )
