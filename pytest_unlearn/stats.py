"""Intervals over seeds and items (``verdict.py`` uses them to compare methods).

A metric is measured on the same val items under several seeds (``--unlearn-seeds``). Its
outcomes come as ``{seed: [one value per item]}``, the items in the same order for every
seed (1.0 passed, 0.0 not, or a real value such as a token accuracy). The metric of one
seed is the mean over its items; the metric of a method is the mean over seeds of that.

Its interval is a percentile bootstrap over seeds and items, crossed: a resample draws
the items with replacement and, independently, the seeds with replacement, and takes the
metric of the drawn items under the drawn seeds. The seeds carry the spread of training;
the items carry the spread of which questions the benchmark happens to ask. With one seed
only the items are resampled.

Every seed answers the same items, so one draw of items serves all seeds. Drawing items
anew within each seed would count S seeds of N items as S x N different questions: where
an item's outcome hardly depends on the seed (a hard question stays hard), that interval
is too narrow by up to the square root of S. With few seeds (3 to 5) the seed draw sees
little of the spread, so any interval is an estimate of the uncertainty, not a guarantee.

numpy is imported inside the functions: this module is read by the plugin at the end of
every run, and the rest of a run that computes no interval should not pay for numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

ValuesBySeed = Mapping[int, Sequence[float]]
Transform = Callable[["np.ndarray"], "np.ndarray"]


# How many item weights one block of resamples may hold (bounds the memory in use).
_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Interval:
    """A metric's mean and its percentile bootstrap interval."""

    mean: float
    lower: float
    upper: float
    confidence: float
    seeds: int
    items: int  # items per seed, summed over the parts of a joint metric
    resamples: int
    method: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def interval(
    values_by_seed: ValuesBySeed,
    confidence: float = 0.95,
    resamples: int = 2000,
    rng_seed: int = 0,
    transform: Transform | None = None,
) -> Interval:
    """The mean over seeds of the per-seed item mean, with its bootstrap interval.

    ``transform``, if given, maps each seed's item mean before the mean over seeds, and must
    work on numpy arrays: perplexity from mean log-probabilities is ``lambda m: np.exp(-m)``.
    """
    return joint_interval([values_by_seed], confidence, resamples, rng_seed, transform)


def joint_interval(
    parts: Sequence[ValuesBySeed],
    confidence: float = 0.95,
    resamples: int = 2000,
    rng_seed: int = 0,
    transform: Transform | None = None,
) -> Interval:
    """The mean of several parts' metrics, e.g. Avg Success = (Unlearn + Retention) / 2.

    Every resample draws one set of seeds for all parts (a seed's model answered both
    scopes), and the items of each part independently (they are different items).
    """
    _check_options(confidence, resamples)
    seeds, [arrays] = _as_arrays([parts], "all parts")
    [statistics] = _bootstrap([arrays], resamples, rng_seed, transform)
    mean = _metric(arrays, transform)
    method = (
        "percentile bootstrap over seeds and items (crossed)"
        if len(seeds) > 1
        else "percentile bootstrap over items (1 seed)"
    )
    return _interval(
        mean,
        statistics,
        confidence,
        len(seeds),
        sum(array.shape[1] for array in arrays),
        resamples,
        method,
    )


def difference_interval(
    a_by_seed: ValuesBySeed,
    b_by_seed: ValuesBySeed,
    confidence: float = 0.95,
    resamples: int = 2000,
    rng_seed: int = 0,
    transform: Transform | None = None,
) -> Interval:
    """The metric of A minus the metric of B, with its interval."""
    return joint_difference_interval(
        [a_by_seed], [b_by_seed], confidence, resamples, rng_seed, transform
    )


def joint_difference_interval(
    a_parts: Sequence[ValuesBySeed],
    b_parts: Sequence[ValuesBySeed],
    confidence: float = 0.95,
    resamples: int = 2000,
    rng_seed: int = 0,
    transform: Transform | None = None,
) -> Interval:
    """A's joint metric minus B's (see `joint_interval`), with its interval.

    Paired: A and B answered the same items under the same seeds, so every resample draws
    the same items and seeds for both; what the two share (a question both find hard) then
    cancels in the difference. A and B must have the same seeds and items per part.
    """
    _check_options(confidence, resamples)
    seeds, (a_arrays, b_arrays) = _as_arrays([a_parts, b_parts], "both methods")
    a_statistics, b_statistics = _bootstrap([a_arrays, b_arrays], resamples, rng_seed, transform)
    mean = _metric(a_arrays, transform) - _metric(b_arrays, transform)
    method = (
        "paired percentile bootstrap over seeds and items (crossed)"
        if len(seeds) > 1
        else "paired percentile bootstrap over items (1 seed)"
    )
    return _interval(
        mean,
        a_statistics - b_statistics,
        confidence,
        len(seeds),
        sum(array.shape[1] for array in a_arrays),
        resamples,
        method,
    )


# --- the bootstrap ------------------------------------------------------------------------------


def _check_options(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"resamples must be a positive integer, got {resamples!r}")


def _as_arrays(
    groups: Sequence[Sequence[ValuesBySeed]], what: str
) -> tuple[list[int], list[list[np.ndarray]]]:
    """Each group's parts as (seeds x items) arrays, rows in seed order; every part of every
    group must have the same seeds, and the groups the same items per part."""
    import numpy as np

    seeds: list[int] | None = None
    arrays: list[list[np.ndarray]] = []
    for group in groups:
        if not group:
            raise ValueError("no parts: expected at least one {seed: [values]} mapping")
        arrays.append([])
        for values_by_seed in group:
            if not values_by_seed:
                raise ValueError("no seeds: expected {seed: [one value per item]}")
            these = sorted(values_by_seed)
            if seeds is None:
                seeds = these
            elif these != seeds:
                raise ValueError(f"{what} must have the same seeds: {seeds} and {these}")
            counts = {seed: len(values_by_seed[seed]) for seed in these}
            if len(set(counts.values())) > 1:
                raise ValueError(f"every seed must score the same items; items per seed: {counts}")
            if not counts[these[0]]:
                raise ValueError(f"no items: seeds {these} have no values")
            array = np.array([values_by_seed[seed] for seed in these], dtype=np.float64)
            if not np.isfinite(array).all():
                raise ValueError(
                    "values must be finite numbers (a NaN or infinity is not an "
                    "outcome; leave the metric out instead)"
                )
            arrays[-1].append(array)
    shapes = {tuple(array.shape[1] for array in group) for group in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"{what} must have the same items per part: "
            f"{' and '.join(str(list(shape)) for shape in sorted(shapes))}"
        )
    assert seeds is not None
    return seeds, arrays


def _bootstrap(
    groups: list[list[np.ndarray]], resamples: int, rng_seed: int, transform: Transform | None
) -> list[np.ndarray]:
    """Per group (a method), its joint metric on each resample.

    A resample draws the items of each part and the seeds, with replacement, and every group
    gets the same draws: the groups answered the same items under the same seeds.
    """
    import numpy as np

    rng = np.random.default_rng(rng_seed)
    seeds = groups[0][0].shape[0]
    part_items = [values.shape[1] for values in groups[0]]
    block = max(1, _BLOCK_ELEMENTS // max(part_items))
    statistics = [np.empty(resamples) for _ in groups]
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        weights = [_item_weights(rng, size, items) for items in part_items]
        seed_draw = rng.integers(0, seeds, size=(size, seeds))
        rows = np.arange(size)[:, None]
        for parts, out in zip(groups, statistics):
            per_part = []
            for values, part_weights in zip(parts, weights):
                # Every seed's mean over the drawn items, then the drawn seeds' mean of that.
                item_means = part_weights @ values.T
                per_seed = item_means if transform is None else transform(item_means)
                per_part.append(per_seed[rows, seed_draw].mean(axis=1))
            out[start : start + size] = np.mean(per_part, axis=0)
    return statistics


def _item_weights(rng: np.random.Generator, resamples: int, items: int) -> np.ndarray:
    """(resamples x items): how often each item was drawn in each resample, over the items."""
    import numpy as np

    picks = rng.integers(0, items, size=(resamples, items))
    picks += np.arange(resamples)[:, None] * items
    counts = np.bincount(picks.ravel(), minlength=resamples * items)
    return counts.reshape(resamples, items) / items


def _metric(parts: list[np.ndarray], transform: Transform | None) -> float:
    """The joint metric of the data as measured: no resampling."""
    total = 0.0
    for values in parts:
        item_means = values.mean(axis=1)
        per_seed = item_means if transform is None else transform(item_means)
        total += float(per_seed.mean())
    return total / len(parts)


def _interval(
    mean: float,
    statistics: np.ndarray,
    confidence: float,
    seeds: int,
    items: int,
    resamples: int,
    method: str,
) -> Interval:
    import numpy as np

    tail = (1 - confidence) / 2
    lower, upper = np.quantile(statistics, [tail, 1 - tail])
    if not (math.isfinite(lower) and math.isfinite(upper)):
        raise ValueError(
            f"the bootstrap gave a non-finite interval [{lower}, {upper}]; check the transform"
        )
    return Interval(
        mean=mean,
        lower=float(lower),
        upper=float(upper),
        confidence=confidence,
        seeds=seeds,
        items=items,
        resamples=resamples,
        method=method,
    )
