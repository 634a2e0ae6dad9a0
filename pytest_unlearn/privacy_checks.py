"""What the membership and quantized tests read of a model, through the session's cache:
the attack scores of the forget set and the holdout (``membership.py``), the oracle's and
the vanilla model's beside the method's, the forget quality (``forget_quality.py``), and
the quantized copies of a model (``quantization.py``) with their item scores.

Every figure is computed from a model's real log-probabilities and cached like the item
scores, under the model's cache key, so a rerun loads no model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .cache import cache_key, library_versions
from .data import DomainData
from .errors import UnlearnError
from .forget_quality import ForgetQuality, forget_quality
from .holdout import forget_set, shortfall
from .membership import (
    ATTACKS,
    PRIVLEAK_ATTACK,
    auc,
    auc_interval,
    privleak,
    privleak_verdict,
    token_stats,
)
from .models import ModelHandle
from .oracle import ORACLE_ROW, load_oracle, oracle_key, unavailable
from .quantization import GROUP_SIZE, SCHEME_VERSION, quantized_copy
from .vocabulary import MAX_LENGTH

if TYPE_CHECKING:
    from .session import UnlearnSession

# Part of the cache key of stored attack scores: raise it when an attack changes.
MEMBERSHIP_VERSION = 1
# The default bound of |PrivLeak| of the privacy_leak tests (docs/privacy.md: just above the
# 95% noise of an AUC of 0.5 on the real privacy data's 459 forget and 51 holdout records,
# +-0.084, which is +-0.17 relative to 0.5).
DEFAULT_PRIVLEAK_BOUND = 0.2
PRIVLEAK_METRIC = "privleak"


def attack_scores(
    unlearn: UnlearnSession, domain: str, model_key: str, load: Callable[[], ModelHandle]
) -> dict[str, dict[str, list[float]]]:
    """Each attack's score of every forget and holdout record by the model with
    ``model_key``: ``{"forget": {attack: [...]}, "holdout": {attack: [...]}}``."""
    data = unlearn.domain_data(domain)
    reason = no_holdout(data, unlearn.settings.holdout)
    if reason is not None:
        raise UnlearnError(reason)
    payload = {
        "kind": "attack_scores",
        "version": MEMBERSHIP_VERSION,
        "model": model_key,
        "data": data.content_hash(),
        "max_length": MAX_LENGTH,
        "versions": library_versions(),
    }

    def compute() -> dict[str, Any]:
        handle = load()
        result: dict[str, Any] = {}
        for name, records in (("forget", forget_set(data)), ("holdout", list(data.holdout))):
            unlearn.progress(f"membership {domain}: {len(records)} {name} records")
            stats = token_stats(handle.model, handle.tokenizer, records, f"{domain} {name}")
            result[name] = {attack: [score(s) for s in stats] for attack, score in ATTACKS.items()}
        return result

    return unlearn.artifacts.get(
        ("attack scores", domain, model_key),
        payload,
        f"the {domain} membership-attack scores of model {model_key[:12]}",
        compute,
        "attack_scores.json",
        found=f"membership {domain}: attack scores from the cache (model {model_key[:12]})",
    )


def no_holdout(data: DomainData, holdout: str | float) -> str | None:
    """Why the domain has no holdout (the membership tests skip with it), or None."""
    if data.holdout:
        return None
    return "no holdout, so membership inference has nothing to compare the forget set with: " + (
        shortfall(data) or f"--unlearn-holdout={holdout}; use --unlearn-holdout=auto"
    )


def membership_skip(unlearn: UnlearnSession, domain: str, method: str) -> str | None:
    """Why the method's privacy_leak test skips (the oracle itself, no oracle given with
    --unlearn-inject=never, no holdout), or None when it runs."""
    if method == ORACLE_ROW:
        return f"{ORACLE_ROW} is the oracle every PrivLeak is measured against"
    return unavailable(unlearn.pipeline) or no_holdout(
        unlearn.domain_data(domain), unlearn.settings.holdout
    )


@dataclass
class PrivacyLeak:
    """What a privacy_leak test checks: the AUCs of the method, the oracle and the vanilla
    model per attack, PrivLeak per attack, and the forget quality against the oracle."""

    aucs: dict[str, float]
    auc_intervals: dict[str, tuple[float, float]]
    oracle_aucs: dict[str, float]
    vanilla_aucs: dict[str, float]
    privleak: dict[str, float]
    quality: ForgetQuality
    model_key: str
    oracle_key: str
    forget: int
    holdout: int

    def outside(self, bounds: tuple[float, float]) -> str | None:
        """Why the privacy_leak test fails: PrivLeak (min-k%) outside ``bounds`` (min,
        max), in plain words with every attack's AUC and the forget quality; or None."""
        value = self.privleak[PRIVLEAK_ATTACK]
        low, high = bounds
        if low <= value <= high:
            return None
        aucs = ", ".join(
            f"{attack} {auc_of:.3f} (oracle {self.oracle_aucs[attack]:.3f})"
            for attack, auc_of in self.aucs.items()
        )
        return (
            f"{privleak_verdict(value, max(-low, high))}: PrivLeak {value:+.3f} is outside "
            f"[{low:+.3f}, {high:+.3f}]; AUCs of forget vs holdout: {aucs}; forget quality: "
            f"{self.quality.verdict()}"
        )

    def properties(self) -> list[tuple[str, Any]]:
        """The test's user properties (the summary's figures are read from them)."""
        props: list[tuple[str, Any]] = [
            ("membership_test", True),
            ("membership_model_key", self.model_key),
            ("membership_oracle_key", self.oracle_key),
            ("membership_forget", self.forget),
            ("membership_holdout", self.holdout),
            ("forget_quality_ks", self.quality.statistic),
            ("forget_quality_p", self.quality.p_value),
        ]
        for attack in ATTACKS:
            low, high = self.auc_intervals[attack]
            props += [
                (f"auc_{attack}", self.aucs[attack]),
                (f"auc_{attack}_low", low),
                (f"auc_{attack}_high", high),
                (f"oracle_auc_{attack}", self.oracle_aucs[attack]),
                (f"vanilla_auc_{attack}", self.vanilla_aucs[attack]),
                (f"privleak_{attack}", self.privleak[attack]),
            ]
        return props


def privacy_leak(
    unlearn: UnlearnSession, domain: str, method: str, seed: int, load: Callable[[], ModelHandle]
) -> PrivacyLeak:
    """The method's membership figures against the oracle's (which is built if needed)."""
    pipeline = unlearn.pipeline
    data = unlearn.domain_data(domain)
    key = unlearn.model_key(domain, method, seed)
    oracle = oracle_key(pipeline, data)
    vanilla = cache_key(pipeline.vanilla_payload(data))
    own = attack_scores(unlearn, domain, key, load)
    of_oracle = attack_scores(unlearn, domain, oracle, lambda: load_oracle(pipeline, data))
    of_vanilla = attack_scores(unlearn, domain, vanilla, lambda: pipeline.load_vanilla(data))
    aucs = attack_aucs_of(own)
    oracle_aucs = attack_aucs_of(of_oracle)
    method_ll = [s.mean_logprob for s in unlearn_val_scores(unlearn, domain, key, load)]
    oracle_ll = [
        s.mean_logprob
        for s in unlearn_val_scores(unlearn, domain, oracle, lambda: load_oracle(pipeline, data))
    ]
    return PrivacyLeak(
        aucs=aucs,
        auc_intervals={
            attack: auc_interval(own["forget"][attack], own["holdout"][attack])
            for attack in ATTACKS
        },
        oracle_aucs=oracle_aucs,
        vanilla_aucs=attack_aucs_of(of_vanilla),
        privleak={attack: privleak(aucs[attack], oracle_aucs[attack]) for attack in ATTACKS},
        quality=forget_quality(method_ll, oracle_ll),
        model_key=key,
        oracle_key=oracle,
        forget=len(own["forget"][PRIVLEAK_ATTACK]),
        holdout=len(own["holdout"][PRIVLEAK_ATTACK]),
    )


def attack_aucs_of(scores: dict[str, dict[str, list[float]]]) -> dict[str, float]:
    """Each attack's AUC of the forget set against the holdout."""
    return {attack: auc(scores["forget"][attack], scores["holdout"][attack]) for attack in ATTACKS}


def unlearn_val_scores(
    unlearn: UnlearnSession, domain: str, key: str, load: Callable[[], ModelHandle]
) -> list[Any]:
    """The item scores of the Unlearn Scope's val items (plain prompt) of one model."""
    data = unlearn.domain_data(domain)
    scores = unlearn.artifacts.item_scores(data, key, load)
    return [score for item, score in zip(data.items(), scores) if item.scope == "unlearn"]


def privleak_bounds(unlearn: UnlearnSession, domain: str) -> tuple[float, float]:
    """The (min, max) PrivLeak of the privacy_leak tests: the gate's
    ``domains.DOMAIN.privleak`` bounds when it has them, else +-DEFAULT_PRIVLEAK_BOUND."""
    metric = ((unlearn.gate or {}).get("domains", {}).get(domain, {}) or {}).get(PRIVLEAK_METRIC)
    low, high = -DEFAULT_PRIVLEAK_BOUND, DEFAULT_PRIVLEAK_BOUND
    if isinstance(metric, dict):
        low = float(metric.get("min", low))
        high = float(metric.get("max", high))
    return low, high


# --- quantized models ---------------------------------------------------------------------


def quantized_key(unlearn: UnlearnSession, domain: str, method: str, seed: int, bits: int) -> str:
    """The key of the model's quantized copy: the model's key and the scheme."""
    return cache_key(
        {
            "kind": "quantized",
            "model": unlearn.model_key(domain, method, seed),
            "bits": bits,
            "group_size": GROUP_SIZE,
            "scheme": SCHEME_VERSION,
        }
    )


def quantized_model(
    unlearn: UnlearnSession, domain: str, method: str, seed: int, bits: int
) -> ModelHandle:
    """The unlearned model, quantized to ``bits`` bits (computed from it, never cached: its
    item scores are)."""
    handle = unlearn.unlearned_model(domain, method, seed)
    unlearn.progress(f"quantize {domain} {method} (seed {seed}) to {bits} bits, RTN group 128")
    quantized = quantized_copy(handle, bits)
    quantized.cache_key = quantized_key(unlearn, domain, method, seed, bits)
    handle.release()
    return quantized
