"""General ability: unlearning must not break what the model can do outside the domain.

One test per lm-eval task (--unlearn-general-tasks), method and domain, run on the model
unlearned in that domain, in memory. A test passes when the score meets the task's minimum
and has not dropped more than its max_drop below the reference (the vanilla model, or
--unlearn-reference), as set in thresholds.yaml.

Run beside item tests (``pytest suites/privacy suites/general``), only the domains of those
item tests are tested here; run alone, both.
"""

import pytest


@pytest.mark.general_task(domain="privacy", thresholds="thresholds.yaml")
def test_general_ability(general_result):
    assert general_result.passed, general_result.explain()


@pytest.mark.general_task(domain="copyright", thresholds="thresholds.yaml")
def test_general_ability_after_copyright_unlearning(general_result):
    assert general_result.passed, general_result.explain()
