"""Forget quality against the oracle: are the unlearned model's answer likelihoods on the
Unlearn Scope's val items distributed as those of a model that never learned them?

As TOFU (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs", Sec. 2.5),
a two-sample Kolmogorov-Smirnov test compares the two distributions; here of the per-item
answer log-likelihood (the mean log-probability of the answer tokens, teacher-forced, the
``mean_logprob`` of ``scoring.py``), method against oracle. A high p-value means no evidence
that the method differs from retraining; a small one that it does, in either direction:
still knowing the answers, or knowing them less than a model that never saw them.

The p-value is the asymptotic Kolmogorov distribution with Stephens' small-sample
correction (Stephens 1970; Press et al., "Numerical Recipes", 14.3): scipy is not a
dependency, and the formula is a few lines.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

# The p-value below which the verdict says the method differs from the oracle.
ALPHA = 0.05


@dataclass(frozen=True)
class ForgetQuality:
    statistic: float  # the KS D: the largest gap between the two empirical CDFs
    p_value: float
    method_mean: float  # the mean per-item answer log-likelihood of each model
    oracle_mean: float
    n: int

    def verdict(self) -> str:
        """The test's outcome in plain words."""
        if self.p_value >= ALPHA:
            return (
                f"like the oracle: no evidence that its answer likelihoods differ from a model "
                f"that never learned them (KS D {self.statistic:.3f}, p {self.p_value:.3g})"
            )
        direction = (
            "more likely than the oracle finds them: it still knows them"
            if self.method_mean > self.oracle_mean
            else "less likely than the oracle finds them: pushed below never-learned"
        )
        return (
            f"unlike the oracle (KS D {self.statistic:.3f}, p {self.p_value:.3g}): its answers "
            f"are {direction}"
        )


def ks_statistic(first: Sequence[float], second: Sequence[float]) -> float:
    """The two-sample Kolmogorov-Smirnov D: max |F1(x) - F2(x)| over every observed x."""
    a, b = sorted(first), sorted(second)
    return max(
        abs(bisect.bisect_right(a, x) / len(a) - bisect.bisect_right(b, x) / len(b))
        for x in (*a, *b)
    )


def kolmogorov_p(statistic: float, n: int, m: int) -> float:
    """P(D >= statistic) for samples of n and m values from one distribution."""
    effective = math.sqrt(n * m / (n + m))
    lam = (effective + 0.12 + 0.11 / effective) * statistic
    if lam < 1e-3:
        return 1.0
    total = sum(2 * (-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return min(1.0, max(0.0, total))


def forget_quality(method: Sequence[float], oracle: Sequence[float]) -> ForgetQuality:
    """The KS test of the method's per-item answer log-likelihoods against the oracle's."""
    if not method or not oracle:
        raise ValueError("forget quality needs at least one item scored by each model")
    statistic = ks_statistic(method, oracle)
    return ForgetQuality(
        statistic=statistic,
        p_value=kolmogorov_p(statistic, len(method), len(oracle)),
        method_mean=sum(method) / len(method),
        oracle_mean=sum(oracle) / len(oracle),
        n=len(method),
    )
