"""A development set for tuning, split off the train records by person, and seeded subsets
of whole persons.

Tuning a method's learning rate on the val items would make them a second training signal;
the fair protocol (``benchmarks/tune.py``) chooses on a dev set taken from the train splits
instead, and touches the val items once, to report. The split is by person (in the
copyright domain: by the work a question is about), so that no dev person's other facts
are trained on, and it depends on the records' content and the seed only, not on their
order: the same data and seed give the same dev set wherever it runs.

A record's person is the name its question mentions that the domain's questions mention
most often (a run of two to four capitalized words): in "What is the significance of the
address 76218 Walter Village for Isabella Marquez?" both "Walter Village" and "Isabella
Marquez" are candidates, and the person's name, asked about in many questions, wins. A
question whose names are asked about in no other question takes the most asked-about name
of its answer instead; a record that names nobody either way is a group of its own.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from .data import DomainData, Record
from .errors import UnlearnError
from .vocabulary import SCOPES, SPLITS

# Two to four capitalized words in a row (a possessive 's ends the run).
_NAME = re.compile(r"\b[A-Z][\w-]*(?:\s+[A-Z][\w-]*){1,3}")
# Words that start a sentence with a capital letter but are no part of a name.
_LEADING = set(
    "What Who Whom Whose Where When Which How Why Is Are Was Were Does Do Did Has Have Had "
    "Can Could Will Would Should In On At For Of The A An Tell Describe Name Give List "
    "Yes No".split()
)


def name_candidates(question: str) -> list[str]:
    """The names a question may be about, in order of appearance."""
    found = []
    for match in _NAME.finditer(question):
        words = match.group(0).split()
        while words and words[0] in _LEADING:
            words = words[1:]
        if len(words) < 2:
            continue
        found.append(" ".join(words))
    return found


def persons(records: Iterable[Record]) -> list[str]:
    """Each record's person (see the module docstring), in order."""
    records = list(records)
    candidates = [name_candidates(record.question) for record in records]
    counts = Counter(name for names in candidates for name in set(names))

    def most_asked(names: list[str]) -> str:
        # The most often asked-about name; on a tie, the first.
        return max(names, key=lambda name: (counts[name], -names.index(name)))

    chosen = []
    for record, names in zip(records, candidates):
        if not names or counts[most_asked(names)] < 2:
            names = names + name_candidates(record.answer)
        chosen.append(most_asked(names) if names else f"(question) {record.question}")
    return chosen


def _rank(person: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{person}".encode()).hexdigest()


def dev_split(data: DomainData, share: float = 0.2, seed: int = 0) -> DomainData:
    """The domain's train records split by person into train and dev: the persons are
    ordered by the sha256 of the seed and their name, and the first ``ceil(share * n)``
    persons of the train records are dev. The result's ``*_train`` splits hold the other
    persons' records and its ``*_val`` splits the dev persons' (the data's own val records
    are left out: tuning never sees them)."""
    if not 0 < share < 1:
        raise UnlearnError(f"dev share {share!r} must be between 0 and 1 (exclusive)")
    train = {scope: data.splits[f"{scope}_train"] for scope in SCOPES}
    everyone = persons(record for scope in SCOPES for record in train[scope])
    names = sorted(set(everyone), key=lambda name: _rank(name, seed))
    dev = set(names[: math.ceil(share * len(names))])
    splits: dict[str, tuple[Record, ...]] = {}
    position = 0
    for scope in SCOPES:
        who = everyone[position : position + len(train[scope])]
        position += len(train[scope])
        splits[f"{scope}_train"] = tuple(r for r, p in zip(train[scope], who) if p not in dev)
        splits[f"{scope}_val"] = tuple(r for r, p in zip(train[scope], who) if p in dev)
    empty = [split for split in SPLITS if not splits[split]]
    if empty:
        raise UnlearnError(
            f"the dev split of {data.source} (share {share}, seed {seed}, {len(dev)} of "
            f"{len(names)} persons) leaves {', '.join(empty)} empty: use a larger share, "
            "another seed, or data with more persons"
        )
    return DomainData(data.domain, f"{data.source} dev split (share {share}, seed {seed})", splits)


def person_subset(data: DomainData, count: int, seed: int = 0) -> DomainData:
    """Every record, in all four splits, of ``count`` persons chosen as `dev_split` orders
    them (by the sha256 of the seed and their name): a smaller benchmark of whole persons."""
    records = data.all_records()
    everyone = persons(records)
    names = sorted(set(everyone), key=lambda name: _rank(name, seed))
    if not 0 < count <= len(names):
        raise UnlearnError(f"{data.source} has {len(names)} persons; cannot keep {count}")
    kept = set(names[:count])
    splits: dict[str, tuple[Record, ...]] = {}
    position = 0
    for split in SPLITS:
        size = len(data.splits[split])
        who = everyone[position : position + size]
        position += size
        splits[split] = tuple(r for r, p in zip(data.splits[split], who) if p in kept)
    empty = [split for split in SPLITS if not splits[split]]
    if empty:
        raise UnlearnError(
            f"{count} persons of {data.source} (seed {seed}) leave {', '.join(empty)} empty: "
            "keep more persons or use another seed"
        )
    return DomainData(data.domain, f"{data.source}, {count} persons (seed {seed})", splits)


def write_folder(data: DomainData, folder: Path) -> Path:
    """Write the four splits as a data folder that --unlearn-data reads
    (``FOLDER/<domain>/<split>.json``); return the folder."""
    target = folder / data.domain
    target.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        rows = [{"text": r.question, "labels": r.answer} for r in data.splits[split]]
        (target / f"{split}.json").write_text(json.dumps(rows, ensure_ascii=False, indent=1))
    return folder


def main(argv: list[str] | None = None) -> None:
    """``python -m pytest_unlearn.dev_split --persons N --out FOLDER``: write a seeded
    subset of whole persons (or, with --dev-share, the dev split) as a data folder."""
    import argparse

    from .data import load_domain

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--domain", default="privacy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--persons", type=int, help="keep this many whole persons")
    parser.add_argument("--dev-share", type=float, help="write the dev split instead")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = load_domain(args.data, args.domain)
    if args.dev_share is not None:
        data = dev_split(data, args.dev_share, args.seed)
    elif args.persons is not None:
        data = person_subset(data, args.persons, args.seed)
    write_folder(data, args.out)
    sizes = ", ".join(f"{split} {len(records)}" for split, records in data.splits.items())
    print(f"{data.source}: {sizes} -> {args.out}")


if __name__ == "__main__":
    main()
