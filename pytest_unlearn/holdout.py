"""The holdout: a share of the Unlearn Scope's train records that no model ever trains on.

Membership inference asks whether a model can tell the records it was taught to forget
(the *forget set*: every Unlearn Scope record the vanilla model learned) from records of the
same kind that it never saw (the *holdout*). Without a holdout there is nothing to compare
against, so the holdout is taken out of the data before anything trains: knowledge
injection, unlearning and the relearning attack all see the Unlearn Scope without it. The
val items under test stay as they are; the holdout comes out of ``unlearn_train`` only.

Which records: each candidate is ranked by ``sha256("{seed}\\0{question}\\0{answer}")`` and
the lowest ranks are held out. The split depends on the records' content and the holdout
seed alone, never on their order in the files, so it is the same on every run and machine.
A record whose question and answer also appear in another split (the model would learn it
there) is never held out.

How many: ``auto`` (the default) holds out 10% of the Unlearn Scope, and at least as many
records as an AUC needs to mean something (``required_holdout``); a share (0 to 1) holds out
that share, and a share too small for a meaningful AUC is an error that says how many
records it needs; 0 turns the holdout (and the membership tests) off.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

from .data import DomainData, Record
from .errors import UnlearnError

AUTO = "auto"
DEFAULT_SHARE = 0.10
# An AUC is meaningful here when its 95% interval under "no signal" (AUC = 0.5) is at most
# +-0.15 wide: an attack at AUC 0.65 is then told apart from chance (Hanley & McNeil 1982,
# the variance of the Mann-Whitney AUC under the null: (n + m + 1) / (12 n m)).
MAX_HALF_WIDTH = 0.15
Z_95 = 1.959964
# At most this share of unlearn_train goes to the holdout: unlearning needs the rest.
MAX_TRAIN_SHARE = 0.5


def null_half_width(members: int, holdout: int) -> float:
    """The 95% half-width of an AUC of ``members`` against ``holdout`` scores when the two
    are drawn from one distribution (the normal approximation of the Mann-Whitney U)."""
    if members < 1 or holdout < 1:
        return math.inf
    return Z_95 * math.sqrt((members + holdout + 1) / (12 * members * holdout))


def required_holdout(scope: int) -> int:
    """The fewest holdout records, of an Unlearn Scope of ``scope`` records, for which the
    AUC's 95% null interval is at most +-MAX_HALF_WIDTH wide (0: no split of this scope is
    wide enough)."""
    for holdout in range(1, scope):
        if null_half_width(scope - holdout, holdout) <= MAX_HALF_WIDTH:
            return holdout
    return 0


def parse_holdout(text: str, where: str) -> str | float:
    """``auto``, or a share in [0, 1)."""
    if text.strip().lower() == AUTO:
        return AUTO
    try:
        share = float(text)
    except ValueError:
        share = math.nan
    if not 0 <= share < 1:
        raise UnlearnError(
            f"{where}: give 'auto' (10% of the Unlearn Scope, at least enough for a "
            "meaningful AUC), a share of the Unlearn Scope in [0, 1) such as 0.15, or 0 for "
            "no holdout"
        )
    return share


def holdout_size(data: DomainData, holdout: str | float, where: str) -> int:
    """How many records ``holdout`` (``parse_holdout``) takes out of the domain's data:
    ``auto`` takes none from data too small for a meaningful AUC (``shortfall`` says why,
    and the membership tests fail with it); a share too small is an error."""
    if holdout == 0:
        return 0
    scope = len(data.splits["unlearn_train"]) + len(data.splits["unlearn_val"])
    needed = required_holdout(scope)
    most = int(len(data.splits["unlearn_train"]) * MAX_TRAIN_SHARE)
    if holdout == AUTO:
        return 0 if shortfall(data) else max(math.ceil(DEFAULT_SHARE * scope), needed)
    count = round(float(holdout) * scope)
    if shortfall(data):
        raise UnlearnError(f"{where}={holdout}: {shortfall(data)}")
    if count < needed:
        width = null_half_width(scope - count, count)
        raise UnlearnError(
            f"{where}={holdout}: {count} holdout records of the {scope} Unlearn Scope records "
            f"of {data.domain} are too few for a meaningful AUC (its 95% interval would be "
            f"+-{width:.2f}, above +-{MAX_HALF_WIDTH}); it needs at least {needed} records: "
            f"--unlearn-holdout={math.ceil(needed / scope * 100) / 100} or auto"
        )
    if count > most:
        raise UnlearnError(
            f"{where}={holdout}: {count} holdout records would leave unlearning fewer than "
            f"half of the {len(data.splits['unlearn_train'])} unlearn_train records of "
            f"{data.domain}; give at most {most / scope:.2f}"
        )
    return count


def shortfall(data: DomainData) -> str:
    """Why the domain's data is too small for a holdout ('' when it is not)."""
    train = len(data.splits["unlearn_train"]) + len(data.holdout)
    scope = train + len(data.splits["unlearn_val"])
    needed = required_holdout(scope)
    if needed and needed <= int(train * MAX_TRAIN_SHARE):
        return ""
    return (
        f"the {data.domain} data ({data.source}) has {scope} Unlearn Scope records; a "
        f"membership-inference AUC needs {needed or 'more than ' + str(scope)} of them held "
        f"out (for a 95% interval of at most +-{MAX_HALF_WIDTH}), and at most half of its "
        f"{train} unlearn_train records can be. Give a data set with more Unlearn Scope "
        f"records (about {_scope_for_holdout()} or more)"
    )


def _scope_for_holdout() -> int:
    """The smallest Unlearn Scope (a quarter of it val) that can give a holdout."""
    scope = 2
    while True:
        needed = required_holdout(scope)
        if needed and needed <= int(scope * 0.75 * MAX_TRAIN_SHARE):
            return scope
        scope += 1


def rank(record: Record, seed: int) -> str:
    """The record's place in the holdout order: a hash of its content and the seed."""
    text = f"{seed}\0{record.question}\0{record.answer}"
    return hashlib.sha256(text.encode()).hexdigest()


def with_holdout(data: DomainData, holdout: str | float, seed: int, where: str) -> DomainData:
    """The domain's data with its holdout taken out of ``unlearn_train`` (into
    ``DomainData.holdout``); the data as it is with ``holdout`` 0."""
    count = holdout_size(data, holdout, where)
    if count == 0:
        return data
    elsewhere = {
        (r.question, r.answer)
        for split, records in data.splits.items()
        if split != "unlearn_train"
        for r in records
    }
    train = data.splits["unlearn_train"]
    candidates = sorted(
        {(r.question, r.answer) for r in train} - elsewhere,
        key=lambda pair: rank(Record(*pair), seed),
    )
    chosen = set(candidates[:count])
    first = {(r.question, r.answer): r for r in reversed(train) if (r.question, r.answer) in chosen}
    held = tuple(sorted(first.values(), key=lambda r: rank(r, seed)))
    kept = tuple(r for r in train if (r.question, r.answer) not in chosen)
    return dataclasses.replace(data, splits={**data.splits, "unlearn_train": kept}, holdout=held)


def forget_set(data: DomainData) -> list[Record]:
    """The records membership inference calls members: every Unlearn Scope record the
    vanilla model learned (unlearn_train without the holdout, then unlearn_val)."""
    return [*data.splits["unlearn_train"], *data.splits["unlearn_val"]]
