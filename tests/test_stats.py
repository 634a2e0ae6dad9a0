"""Intervals over seeds and items, and the verdict of a method against its controls."""

import json
import math
import random

import numpy as np
import pytest

from pytest_unlearn import stats
from pytest_unlearn.stats import difference_interval, interval, joint_interval
from pytest_unlearn.verdict import NO_DIFFERENCE, VERDICT_METRICS, Verdict, localization_verdict
from pytest_unlearn_methods.memflex import MemFlex


def outcomes(pass_rates: list[float], items: int, shuffle: int = 0) -> dict[int, list[float]]:
    """Per seed (0, 1, ...), ``items`` pass/fail outcomes passing at that seed's rate."""
    rng = random.Random(shuffle)
    by_seed = {}
    for seed, rate in enumerate(pass_rates):
        passed = round(rate * items)
        values = [1.0] * passed + [0.0] * (items - passed)
        rng.shuffle(values)
        by_seed[seed] = values
    return by_seed


def width(computed: stats.Interval) -> float:
    return computed.upper - computed.lower


# --- intervals ------------------------------------------------------------------------------


def test_the_interval_holds_the_mean_of_the_seed_means():
    computed = interval(outcomes([0.6, 0.7, 0.8], items=100))
    assert computed.mean == pytest.approx(0.7)
    assert computed.lower < computed.mean < computed.upper
    assert 0.5 < computed.lower and computed.upper < 0.9
    assert (computed.seeds, computed.items, computed.resamples) == (3, 100, 2000)
    assert computed.confidence == 0.95 and "seeds and items" in computed.method


def test_more_items_narrow_the_interval():
    few = interval(outcomes([0.7] * 3, items=40))
    many = interval(outcomes([0.7] * 3, items=640))
    # Sixteen times the items: about a quarter of the width.
    assert width(many) < width(few) / 2.5


def test_a_higher_confidence_widens_the_interval():
    data = outcomes([0.6, 0.7, 0.8], items=100)
    assert width(interval(data, confidence=0.99)) > width(interval(data, confidence=0.8))


def test_one_seed_is_a_bootstrap_over_items():
    computed = interval(outcomes([0.7], items=100))
    assert computed.seeds == 1 and computed.method == "percentile bootstrap over items (1 seed)"
    assert computed.lower < 0.7 < computed.upper


def test_seeds_that_disagree_widen_the_interval():
    agree = interval(outcomes([0.7, 0.7, 0.7], items=100))
    disagree = interval(outcomes([0.4, 0.7, 1.0], items=100))
    assert agree.mean == pytest.approx(disagree.mean)
    assert width(disagree) > 2 * width(agree)


def test_seeds_that_answer_alike_are_not_more_items():
    # The seeds answer the same items: three identical seeds say no more about the items
    # than one, so the interval must not shrink (drawing items anew per seed would shrink it
    # by about the square root of 3).
    one = outcomes([0.7], items=100)[0]
    single = interval({0: one})
    repeated = interval({0: one, 1: one, 2: one})
    assert repeated.lower == pytest.approx(single.lower)
    assert repeated.upper == pytest.approx(single.upper)


def test_the_interval_is_deterministic_for_its_rng_seed():
    data = {seed: list(np.random.default_rng(seed).random(50)) for seed in range(3)}
    assert interval(data, rng_seed=3) == interval(data, rng_seed=3)
    assert interval(data, rng_seed=3).lower != interval(data, rng_seed=4).lower


def test_real_valued_outcomes_and_a_transform():
    rng = np.random.default_rng(0)
    logprobs = {seed: list(-1.0 - rng.random(80)) for seed in range(4)}
    perplexity = interval(logprobs, transform=lambda mean: np.exp(-mean))
    expected = np.mean([np.exp(-np.mean(logprobs[seed])) for seed in range(4)])
    assert perplexity.mean == pytest.approx(expected)
    assert perplexity.lower < perplexity.mean < perplexity.upper


def test_resamples_in_blocks_agree_with_resamples_at_once(monkeypatch):
    import numpy as np

    data = outcomes([0.6, 0.7, 0.8], items=100)
    at_once = interval(data)
    monkeypatch.setattr(stats, "_BLOCK_ELEMENTS", 300)  # three resamples per block
    # 2000 resamples in blocks of 3 end with a block of 2; the statistics start as NaN here,
    # so that a resample left out makes the interval NaN.
    empty = np.empty

    def nan_filled(shape, dtype=float, **kwargs):
        if np.dtype(dtype).kind != "f":
            return empty(shape, dtype=dtype, **kwargs)
        return np.full(shape, np.nan, dtype=dtype)

    monkeypatch.setattr(np, "empty", nan_filled)
    in_blocks = interval(data)
    monkeypatch.setattr(np, "empty", empty)
    assert math.isfinite(in_blocks.lower) and math.isfinite(in_blocks.upper)
    assert in_blocks.lower == pytest.approx(at_once.lower, abs=0.02)
    assert in_blocks.upper == pytest.approx(at_once.upper, abs=0.02)


def test_a_joint_interval_is_the_mean_of_its_parts():
    unlearn = outcomes([0.9, 0.8, 0.85], items=110)
    retention = outcomes([0.5, 0.6, 0.55], items=108, shuffle=1)
    joint = joint_interval([unlearn, retention])
    assert joint.mean == pytest.approx((interval(unlearn).mean + interval(retention).mean) / 2)
    assert joint.lower < joint.mean < joint.upper and joint.items == 218
    # Averaging two parts averages out some of their spread.
    assert width(joint) < max(width(interval(unlearn)), width(interval(retention)))


# --- differences and the verdict ------------------------------------------------------------


def test_a_method_minus_itself_is_exactly_zero():
    data = outcomes([0.6, 0.7, 0.8], items=100)
    difference = difference_interval(data, data)
    assert (difference.mean, difference.lower, difference.upper) == (0.0, 0.0, 0.0)
    assert "paired" in difference.method


def test_a_difference_interval_holds_the_difference_of_the_means():
    better = outcomes([0.8, 0.85, 0.9], items=100)
    worse = outcomes([0.6, 0.65, 0.7], items=100, shuffle=1)
    difference = difference_interval(better, worse)
    assert difference.mean == pytest.approx(0.2)
    assert 0 < difference.lower < 0.2 < difference.upper


def scopes(
    unlearn_rates: list[float], retention_rates: list[float], shuffle: int
) -> dict[str, dict[int, list[float]]]:
    return {
        "unlearn": outcomes(unlearn_rates, 110, shuffle),
        "retention": outcomes(retention_rates, 108, shuffle + 100),
    }


CONTROLS = MemFlex.controls


def verdict_of(results: dict, **options) -> Verdict:
    """MemFlex against the controls it declares, as the summary asks for the verdict."""
    return localization_verdict(results, "memflex", CONTROLS, MemFlex.controls_test, **options)


def average_difference(
    ours: dict[str, dict[int, list[float]]], theirs: dict[str, dict[int, list[float]]]
) -> str:
    """Avg Success of ours minus theirs in points, as the verdict prints it."""

    def average(results):
        return np.mean([np.mean(list(results[scope].values())) for scope in results])

    return f"{(average(ours) - average(theirs)) * 100:+.1f} points"


def test_a_clear_difference_beats_the_control():
    ours = scopes([0.90, 0.85, 0.88], [0.80, 0.82, 0.78], shuffle=1)
    theirs = scopes([0.60, 0.55, 0.62], [0.50, 0.45, 0.52], shuffle=2)
    verdict = verdict_of({"memflex": ours, "memflex_all_tensors": theirs})
    [control] = verdict.controls
    assert [d.outcome for d in control.differences] == ["beats", "beats", "beats"]
    assert control.conclusion == "localization beats memflex_all_tensors"
    first, how = verdict.lines()
    assert first.startswith(
        f"vs memflex_all_tensors: avg success {average_difference(ours, theirs)} [95% +"
    )
    assert first.endswith("Verdict: localization beats memflex_all_tensors.")
    assert "3 seeds" in how and "110 unlearn and 108 retention items" in how
    assert "2000 resamples" in how and "95%" in how


def test_identical_methods_show_no_difference():
    same = scopes([0.90, 0.85, 0.88], [0.80, 0.82, 0.78], shuffle=1)
    verdict = verdict_of({"memflex": same, "memflex_random_region": same})
    [control] = verdict.controls
    assert {d.outcome for d in control.differences} == {NO_DIFFERENCE}
    assert control.conclusion.startswith("localization does not beat memflex_random_region")


def test_a_small_difference_within_the_spread_is_no_difference():
    verdict = verdict_of(
        {
            "memflex": scopes([0.80, 0.70, 0.90], [0.70, 0.80, 0.60], shuffle=1),
            "memflex_random_region": scopes([0.78, 0.72, 0.86], [0.72, 0.76, 0.62], shuffle=2),
        }
    )
    [control] = verdict.controls
    assert control.differences[0].outcome == NO_DIFFERENCE
    assert "no difference in avg success beyond the spread" in control.conclusion


def test_a_loss_on_one_scope_is_named_and_a_loss_on_average_loses():
    verdict = verdict_of(
        {
            "memflex": scopes([0.60, 0.62, 0.58], [0.95, 0.93, 0.97], shuffle=1),
            # Better at forgetting, much worse at keeping: memflex wins on average.
            "memflex_inverse_region": scopes([0.90, 0.92, 0.88], [0.30, 0.32, 0.28], shuffle=2),
            # Better on both scopes: memflex loses.
            "memflex_all_tensors": scopes([0.90, 0.92, 0.88], [0.99, 1.0, 0.98], shuffle=3),
        }
    )
    by_control = {each.control: each for each in verdict.controls}
    assert list(by_control) == ["memflex_all_tensors", "memflex_inverse_region"]
    inverse = by_control["memflex_inverse_region"]
    assert [d.outcome for d in inverse.differences] == ["beats", "loses", "beats"]
    assert inverse.conclusion == (
        "localization beats memflex_inverse_region on avg success, "
        "at a cost: it is worse on unlearn success"
    )
    assert by_control["memflex_all_tensors"].differences[0].outcome == "loses"
    assert by_control["memflex_all_tensors"].conclusion.startswith("localization loses to")


def test_one_seed_is_undecided_but_gives_the_numbers():
    ours, theirs = scopes([0.90], [0.80], shuffle=1), scopes([0.50], [0.40], shuffle=2)
    verdict = verdict_of(
        {
            "memflex": ours,
            "memflex_all_tensors": theirs,
            "memflex_random_region": scopes([0.85], [0.80], shuffle=3),
        }
    )
    assert not verdict.decided and verdict.seeds == 1
    *per_control, how = verdict.lines()
    assert len(per_control) == 2
    for line in per_control:
        assert line.endswith(
            "Verdict: undecided: one seed cannot show the seed spread; rerun "
            "with --unlearn-seeds 3 or more."
        )
        assert "points [95% " in line and "beats" not in line
    assert per_control[0].startswith(
        f"vs memflex_all_tensors: avg success {average_difference(ours, theirs)} [95% +"
    )
    assert "one seed" in how and "no verdict" in how


def test_the_verdict_as_json():
    verdict = verdict_of(
        {
            "memflex": scopes([0.90, 0.85], [0.80, 0.82], shuffle=1),
            "memflex_all_tensors": scopes([0.60, 0.55], [0.50, 0.45], shuffle=2),
        }
    )
    report = json.loads(json.dumps(verdict.to_dict()))
    assert report["decided"] is True and report["seeds"] == 2
    [control] = report["controls"]
    assert control["control"] == "memflex_all_tensors"
    assert list(control["differences"]) == list(VERDICT_METRICS)
    average = control["differences"]["avg_success"]
    assert average["outcome"] == "beats" and average["lower"] > 0
    assert average["mean"] == pytest.approx(verdict.controls[0].differences[0].interval.mean)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "no seeds"),
        ({0: [], 1: []}, "no items"),
        ({0: [1.0, 0.0], 1: [1.0]}, "the same items"),
        ({0: [1.0, float("nan")]}, "finite"),
    ],
)
def test_bad_outcomes_are_errors(data, message):
    with pytest.raises(ValueError, match=message):
        interval(data)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": 0}, "confidence"),
        ({"resamples": 0}, "resamples"),
    ],
)
def test_bad_options_are_errors(options, message):
    with pytest.raises(ValueError, match=message):
        interval({0: [1.0, 0.0]}, **options)


def test_parts_and_methods_must_match():
    with pytest.raises(ValueError, match="same seeds"):
        joint_interval([{0: [1.0], 1: [0.0]}, {0: [1.0]}])
    with pytest.raises(ValueError, match="same items per part"):
        difference_interval({0: [1.0, 0.0]}, {0: [1.0, 0.0, 1.0]})
    with pytest.raises(ValueError, match="memflex vs memflex_all_tensors: .*same seeds"):
        verdict_of(
            {
                "memflex": scopes([0.9, 0.8], [0.8, 0.8], shuffle=1),
                "memflex_all_tensors": scopes([0.9], [0.8], shuffle=2),
            }
        )


def test_the_verdict_needs_memflex_and_a_control_with_both_scopes():
    results = {"memflex": scopes([0.9, 0.8], [0.8, 0.8], shuffle=1)}
    with pytest.raises(ValueError, match="memflex\\+controls"):
        verdict_of(results)
    with pytest.raises(ValueError, match="no outcomes of 'memflex'"):
        verdict_of({CONTROLS[0]: results["memflex"]})
    with pytest.raises(ValueError, match="no retention-scope outcomes"):
        verdict_of({**results, CONTROLS[0]: {"unlearn": results["memflex"]["unlearn"]}})
