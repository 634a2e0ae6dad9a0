"""The membership tests' figures in the run's summary: per method and domain, the mean over
seeds of each attack's AUC (method, oracle, vanilla), PrivLeak, the forget quality, whether
the method over-unlearns, and intervals.

The intervals are a paired percentile bootstrap over records (1000 resamples): each draw
resamples the forget set and the holdout once and recomputes, for every seed's model and the
oracle under the same draw, the AUCs and PrivLeak, then their mean over seeds. The attack
scores are read back from the cache, where the tests left them (also under xdist).
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any

from .errors import UnlearnError
from .membership import ATTACKS, OVER_UNLEARNING, PRIVLEAK_ATTACK, privleak_verdict
from .models import ModelHandle
from .privacy_checks import DEFAULT_PRIVLEAK_BOUND, attack_scores
from .vocabulary import DEFAULT_PROMPT

if TYPE_CHECKING:
    from .session import UnlearnSession

RESAMPLES = 1000


def membership_record(
    properties: dict[str, Any], outcome: str, message: str | None
) -> dict[str, Any]:
    """One membership test's result, from its report's user properties."""
    record: dict[str, Any] = {
        "method": properties["unlearn_method"],
        "domain": properties["unlearn_domain"],
        "seed": properties.get("unlearn_seed"),
        "outcome": outcome,
        "message": message,
    }
    for key, value in properties.items():
        if key.startswith(("auc_", "oracle_auc_", "vanilla_auc_", "privleak_", "forget_quality_")):
            record[key] = value
        elif key.startswith("membership_") and key != "membership_test":
            record[key.removeprefix("membership_")] = value
    return record


def membership_summary(unlearn: UnlearnSession, confidence: float = 0.95) -> list[dict[str, Any]]:
    """One entry per (method, domain) of the membership tests, in first-seen order."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in unlearn.membership.values():
        groups.setdefault((record["method"], record["domain"]), []).append(record)
    entries = []
    for (method, domain), records in groups.items():
        done = [r for r in records if "model_key" in r]
        entry: dict[str, Any] = {
            "method": method,
            "domain": domain,
            "seeds": sorted(r["seed"] for r in done),
            "tests": {
                outcome: sum(r["outcome"] == outcome for r in records)
                for outcome in ("passed", "failed", "error", "skipped")
            },
            "first_message": next((r["message"] for r in records if r["message"]), None),
        }
        if done:
            entry.update(_figures(done))
            entry["intervals"] = _intervals(unlearn, domain, done, confidence)
            value = entry[f"privleak_{PRIVLEAK_ATTACK}"]
            entry["privleak"] = value
            entry["over_unlearning"] = value < OVER_UNLEARNING
            entry["verdict"] = privleak_verdict(value, DEFAULT_PRIVLEAK_BOUND)
            entry["forget_quality_verdict"] = _quality_verdict(done)
        entries.append(entry)
    return entries


def add_to_rows(rows: list[dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    """Each membership entry's figures into its method's row (plain prompt), so that the
    gate, the baseline and the tables read them like any other figure."""
    for entry in entries:
        for row in rows:
            if (row["method"], row["domain"], row.get("prompt")) != (
                entry["method"],
                entry["domain"],
                DEFAULT_PROMPT,
            ):
                continue
            for key, value in entry.items():
                if key.startswith(("auc_", "oracle_auc_", "vanilla_auc_", "privleak")) or key in (
                    "forget_quality_ks",
                    "forget_quality_p",
                    "over_unlearning",
                ):
                    row[key] = value
            for key, interval in entry.get("intervals", {}).items():
                row.setdefault("intervals", {})[key] = interval


def _figures(done: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [
        f"{prefix}{attack}"
        for attack in ATTACKS
        for prefix in ("auc_", "oracle_auc_", "vanilla_auc_", "privleak_")
    ] + ["forget_quality_ks", "forget_quality_p"]
    figures: dict[str, Any] = {key: _mean([r.get(key) for r in done]) for key in keys}
    figures["per_seed"] = {
        str(r["seed"]): {
            "privleak": r.get(f"privleak_{PRIVLEAK_ATTACK}"),
            "forget_quality_p": r.get("forget_quality_p"),
            **{f"auc_{attack}": r.get(f"auc_{attack}") for attack in ATTACKS},
        }
        for r in done
    }
    figures["forget_records"] = done[0].get("forget")
    figures["holdout_records"] = done[0].get("holdout")
    return figures


def _quality_verdict(done: list[dict[str, Any]]) -> str:
    unlike = [r for r in done if (r.get("forget_quality_p") or 0.0) < 0.05]
    if not unlike:
        return f"like the oracle in every seed ({len(done)}): KS p >= 0.05"
    return f"unlike the oracle in {len(unlike)} of {len(done)} seeds (KS p < 0.05)"


def _intervals(
    unlearn: UnlearnSession, domain: str, done: list[dict[str, Any]], confidence: float
) -> dict[str, dict[str, Any]]:
    import numpy as np

    def cached(key: str) -> dict[str, dict[str, list[float]]]:
        def not_cached() -> ModelHandle:
            raise UnlearnError(f"the attack scores of model {key[:12]} are not in the cache")

        return attack_scores(unlearn, domain, key, not_cached)

    try:
        models = [cached(r["model_key"]) for r in done]
        oracle = cached(done[0]["oracle_key"])
    except UnlearnError:
        return {}
    rng = np.random.default_rng(0)
    n = len(oracle["forget"][PRIVLEAK_ATTACK])
    m = len(oracle["holdout"][PRIVLEAK_ATTACK])
    draws = [(rng.integers(0, n, n), rng.integers(0, m, m)) for _ in range(RESAMPLES)]
    intervals = {}
    for attack in ATTACKS:
        aucs, leaks = [], []
        oracle_f = np.asarray(oracle["forget"][attack])
        oracle_h = np.asarray(oracle["holdout"][attack])
        own = [(np.asarray(s["forget"][attack]), np.asarray(s["holdout"][attack])) for s in models]
        for forget_index, holdout_index in draws:
            base = _auc(oracle_f[forget_index], oracle_h[holdout_index])
            values = [_auc(f[forget_index], h[holdout_index]) for f, h in own]
            aucs.append(float(np.mean(values)))
            leaks.append(float(np.mean([(v - base) / base for v in values])))
        for name, samples in ((f"auc_{attack}", aucs), (f"privleak_{attack}", leaks)):
            low, high = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
            intervals[name] = {
                "mean": _mean([r.get(name) for r in done]),
                "lower": float(low),
                "upper": float(high),
                "confidence": confidence,
                "seeds": len(done),
                "items": n + m,
                "resamples": RESAMPLES,
                "method": "paired percentile bootstrap over forget and holdout records",
            }
    intervals["privleak"] = intervals[f"privleak_{PRIVLEAK_ATTACK}"]
    return intervals


def _auc(forget: Any, holdout: Any) -> float:
    greater = (forget[:, None] > holdout[None, :]).mean()
    ties = (forget[:, None] == holdout[None, :]).mean()
    return float(greater + ties / 2)


def _mean(values: list[Any]) -> float:
    present = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(present) / len(present) if present else math.nan


def membership_lines(entries: list[dict[str, Any]]) -> list[str]:
    """The terminal's membership table: AUC per attack of method / oracle, PrivLeak, forget
    quality's p-value; then per method its verdict, and a legend. Every line fits 120
    columns (long ones are wrapped, never cut)."""
    names = {"loss": "loss", "zlib": "zlib", "min_k": "min-k%", "min_k_plus_plus": "min-k%++"}
    lines = [
        f"{'method':<22}{'domain':<10}"
        + "".join(f"{'AUC ' + names[a]:>16}" for a in ATTACKS)
        + f"{'PrivLeak':>10}{'FQ p':>9}"
    ]
    notes = []
    for entry in entries:
        if "privleak" not in entry:
            lines.append(f"{entry['method']:<22}{entry['domain']:<10}no figures")
            notes.append(
                f"{entry['method']} ({entry['domain']}): no figures: "
                f"{entry.get('first_message') or 'no test reported'}"
            )
            continue
        cells = "".join(
            f"{entry[f'auc_{a}']:>9.3f}/{entry[f'oracle_auc_{a}']:<6.3f}" for a in ATTACKS
        )
        lines.append(
            f"{entry['method']:<22}{entry['domain']:<10}{cells}{entry['privleak']:>+10.3f}"
            f"{entry['forget_quality_p']:>9.3g}"
        )
        notes.append(
            f"{entry['method']} ({entry['domain']}): {entry['verdict']}; forget quality "
            f"{entry['forget_quality_verdict']}"
        )
        interval = entry.get("intervals", {}).get("privleak")
        if interval:
            notes[-1] += f"; PrivLeak 95% [{interval['lower']:+.3f}, {interval['upper']:+.3f}]"
    notes.append(
        "AUC: method/oracle, of the forget set against the holdout; PrivLeak (min-k%) = "
        "(AUC method - AUC oracle) / AUC oracle; FQ p: forget quality, the p-value of a KS "
        "test of the answer log-likelihoods against the oracle's (docs/privacy.md)."
    )
    wrapped = [
        part for note in notes for part in textwrap.wrap(note, width=120, subsequent_indent="  ")
    ]
    return [*lines, "", *wrapped]
