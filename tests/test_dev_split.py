"""The dev split of the tuning protocol (pytest_unlearn.dev_split): by person, seeded,
content-hashed, whole persons only; and the per-scope recall of knowledge injection."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_unlearn.data import DomainData, Record, load_domain
from pytest_unlearn.dev_split import (
    dev_split,
    name_candidates,
    person_subset,
    persons,
    write_folder,
)
from pytest_unlearn.errors import InjectionWarning, UnlearnError
from pytest_unlearn.injection import exact_share_by_scope, warn_if_weak
from pytest_unlearn.vocabulary import SPLITS


def test_a_question_is_about_the_most_asked_about_name() -> None:
    records = [
        Record("Who are Isabella Marquez's parents?", "A painter and a chemist."),
        Record("Where was Isabella Marquez born?", "In Granada."),
        Record(
            "What is the significance of the address 76218 Walter Village for Isabella Marquez?",
            "It is her home.",
        ),
        Record("Has Hiro Tanaka won any awards?", "Yes, two."),
        Record("What does Hiro Tanaka write?", "Crime novels."),
        Record("Where does the author live?", "Hiro Tanaka lives in Tokyo."),
        Record("What is a roux?", "Flour cooked in fat."),
    ]
    assert name_candidates(records[2].question) == ["Walter Village", "Isabella Marquez"]
    assert name_candidates(records[3].question) == ["Hiro Tanaka"]  # "Has" is no name
    assert persons(records) == [
        "Isabella Marquez",
        "Isabella Marquez",
        "Isabella Marquez",
        "Hiro Tanaka",
        "Hiro Tanaka",
        "Hiro Tanaka",  # the question names nobody: the answer's name
        "(question) What is a roux?",
    ]


def _split_persons(data: DomainData) -> tuple[set[str], set[str]]:
    train = [r for s in ("unlearn_train", "retention_train") for r in data.splits[s]]
    dev = [r for s in ("unlearn_val", "retention_val") for r in data.splits[s]]
    everyone = persons(train + dev)
    return set(everyone[: len(train)]), set(everyone[len(train) :])


def test_the_dev_split_takes_whole_persons_off_the_train_records() -> None:
    data = load_domain("builtin", "privacy")
    dev = dev_split(data, share=0.25, seed=0)
    train_people, dev_people = _split_persons(dev)
    assert train_people and dev_people and not train_people & dev_people
    assert len(dev_people) == 7  # ceil(0.25 * 28 builtin persons)
    # Every train record is in exactly one part; no val record is anywhere.
    train = {r for s in ("unlearn_train", "retention_train") for r in data.splits[s]}
    split = {r for s in SPLITS for r in dev.splits[s]}
    assert split == train
    for scope in ("unlearn", "retention"):
        assert set(dev.splits[f"{scope}_train"]) | set(dev.splits[f"{scope}_val"]) == set(
            data.splits[f"{scope}_train"]
        )
    assert not split & {r for s in ("unlearn_val", "retention_val") for r in data.splits[s]}


def test_the_dev_split_depends_on_content_and_seed_not_on_order() -> None:
    data = load_domain("builtin", "privacy")
    shuffled = {split: list(records) for split, records in data.splits.items()}
    for records in shuffled.values():
        random.Random(1).shuffle(records)
    reordered = DomainData(data.domain, "shuffled", {k: tuple(v) for k, v in shuffled.items()})
    first, again = dev_split(data, seed=3), dev_split(reordered, seed=3)
    for split in SPLITS:
        assert set(first.splits[split]) == set(again.splits[split])
    other = dev_split(data, seed=4)
    assert _split_persons(other)[1] != _split_persons(first)[1]


def test_a_dev_split_that_empties_a_split_is_an_error() -> None:
    record = Record("Who is Ada Lovelace?", "A mathematician.")
    other = Record("Who is Alan Turing?", "A logician.")
    data = DomainData(
        "privacy",
        "two persons",
        {
            "unlearn_train": (record,),
            "unlearn_val": (record,),
            "retention_train": (other,),
            "retention_val": (other,),
        },
    )
    with pytest.raises(UnlearnError, match="leaves .* empty: use a larger share"):
        dev_split(data, share=0.5)
    with pytest.raises(UnlearnError, match="between 0 and 1"):
        dev_split(data, share=1.0)


def test_a_person_subset_keeps_every_record_of_its_persons(tmp_path: Path) -> None:
    data = load_domain("builtin", "privacy")
    subset = person_subset(data, 5, seed=0)
    everyone = persons(data.all_records())
    kept = set(persons(subset.all_records()))
    assert len(kept) == 5
    whole = {r for r, p in zip(data.all_records(), everyone) if p in kept}
    assert set(subset.all_records()) == whole
    # Written as a data folder, it loads back as it was.
    loaded = load_domain(str(write_folder(subset, tmp_path)), "privacy")
    assert loaded.content_hash() == subset.content_hash()
    with pytest.raises(UnlearnError, match="has 28 persons; cannot keep 29"):
        person_subset(data, 29)


@dataclass
class _Score:
    token_accuracy: float


def test_injection_reports_exact_recall_per_scope_and_warns_for_a_weak_scope() -> None:
    scores = [_Score(1.0), _Score(1.0), _Score(0.5), _Score(1.0), _Score(0.9)]
    shares = exact_share_by_scope(scores, ["unlearn", "unlearn", "retention", "retention"])
    assert shares == {"unlearn": 1.0, "retention": 0.5, "general": 0.0}
    lines: list[str] = []
    log = {
        "injected": True,
        "records": 20,
        "token_accuracy": 0.99,
        "exact_share": 0.95,
        "exact_share_by_scope": {"unlearn": 1.0, "retention": 0.85, "general": 0.1},
    }
    with pytest.warns(InjectionWarning, match=r"unlearn 100.0%, retention 85.0%"):
        warn_if_weak(log, "privacy", lines.append)
    assert lines == [
        "vanilla privacy: 95.0% of 20 records recalled exactly "
        "(unlearn 100.0%, retention 85.0%, general 10.0%)"
    ]
    # Both scopes above the minimum: no warning, whatever the general text.
    log["exact_share_by_scope"] = {"unlearn": 0.95, "retention": 0.96, "general": 0.1}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_weak(log, "privacy")
