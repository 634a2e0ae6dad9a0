"""How many Unlearn Scope val items of a data folder yield sensitive strings, of each kind.

Prints, for the privacy domain, the count of unlearn_val items that yield at least one
string of each kind (email, address, parents), the count that yield none, the same counts
once the strings the question already contains are left out (those a leak test checks),
and up to 10 examples per kind.

    python benchmarks/leak_strings.py                              # ../shared/knowundo/privacy
    python benchmarks/leak_strings.py --data builtin
    python benchmarks/leak_strings.py --data ../shared/knowundo/privacy --split unlearn_train
"""

from __future__ import annotations

import argparse
from collections import Counter

from pytest_unlearn.data import load_domain
from pytest_unlearn.leaks import KINDS, Sensitive, sensitive_strings
from pytest_unlearn.vocabulary import SPLITS

EXAMPLES = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default="../shared/knowundo/privacy",
        help="a data folder, or 'builtin' (default: %(default)s)",
    )
    parser.add_argument(
        "--split",
        default="unlearn_val",
        choices=SPLITS,
        help="which split to read (default: %(default)s)",
    )
    args = parser.parse_args()
    data = load_domain(args.data, "privacy")
    records = data.splits[args.split]
    print(f"{data.source}, {args.split}: {len(records)} items")

    from_answers = [sensitive_strings(record.answer) for record in records]
    checked = [sensitive_strings(record.answer, question=record.question) for record in records]
    print(f"{'':>30} {'answer':>8} {'answer not in question':>24}")
    for kind in KINDS:
        print(
            f"{'items with ' + kind:>30} {_items_with(from_answers, kind):>8} "
            f"{_items_with(checked, kind):>24}"
        )
    print(
        f"{'items with none':>30} {sum(not found for found in from_answers):>8} "
        f"{sum(not found for found in checked):>24}"
    )
    print(f"{'strings':>30} {sum(map(len, from_answers)):>8} {sum(map(len, checked)):>24}")

    for kind in KINDS:
        print(f"\n{kind}, first {EXAMPLES} examples:")
        shown = 0
        for record, found in zip(records, from_answers):
            texts = [sensitive.text for sensitive in found if sensitive.kind == kind]
            if texts and shown < EXAMPLES:
                shown += 1
                print(f"  {texts}  <-  {record.answer[:100]!r}")
    given_away = Counter(
        sensitive.kind
        for found, kept in zip(from_answers, checked)
        for sensitive in found
        if sensitive not in kept
    )
    print(f"\nstrings the question already contains, by kind: {dict(given_away) or 'none'}")


def _items_with(found: list[list[Sensitive]], kind: str) -> int:
    return sum(any(sensitive.kind == kind for sensitive in strings) for strings in found)


if __name__ == "__main__":
    main()
