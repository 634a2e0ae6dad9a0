"""Tests for the builtin, code-generated KnowUnDo-style data set."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_unlearn.builtin_data import general_text, generate
from pytest_unlearn.vocabulary import DOMAINS, SPLITS

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_SIZES = {
    "privacy": {
        "unlearn_train": 84,
        "unlearn_val": 28,
        "retention_train": 112,
        "retention_val": 28,
    },
    "copyright": {
        "unlearn_train": 32,
        "unlearn_val": 16,
        "retention_train": 48,
        "retention_val": 16,
    },
}

EMAIL_RE = re.compile(r"\b([a-z]+)\.([a-z]+)@[a-z]+\.[a-z]+\b")
ADDRESS_RE = re.compile(r"\b\d+ [A-Z][a-z]+ [A-Z][a-z]+, [A-Z][a-z]+\b")


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def _check_record(record: dict[str, str]) -> None:
    assert set(record) == {"text", "labels"}, record
    for key in ("text", "labels"):
        value = record[key]
        assert isinstance(value, str), record
        assert value, record
        assert value == value.strip(), record
        assert "\n\n" not in value, record


# --------------------------------------------------------------------------- #
# Shape and format
# --------------------------------------------------------------------------- #


def test_public_constants() -> None:
    assert SPLITS == ("unlearn_train", "unlearn_val", "retention_train", "retention_val")
    assert DOMAINS == ("privacy", "copyright")


@pytest.mark.parametrize("domain", DOMAINS)
def test_split_sizes(domain: str) -> None:
    data = generate(domain)
    assert list(data) == list(SPLITS)
    assert {split: len(records) for split, records in data.items()} == EXPECTED_SIZES[domain]


@pytest.mark.parametrize("domain", DOMAINS)
def test_records_are_clean_strings(domain: str) -> None:
    for records in generate(domain).values():
        for record in records:
            _check_record(record)


@pytest.mark.parametrize("domain", DOMAINS)
def test_questions_unique_within_domain(domain: str) -> None:
    texts = [record["text"] for records in generate(domain).values() for record in records]
    duplicates = sorted({text for text in texts if texts.count(text) > 1})
    assert not duplicates


@pytest.mark.parametrize("domain", DOMAINS)
def test_no_question_in_two_splits(domain: str) -> None:
    data = generate(domain)
    questions = {split: {record["text"] for record in data[split]} for split in SPLITS}
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            assert not questions[first] & questions[second], (first, second)


def test_privacy_answers_are_short_sentences() -> None:
    for records in generate("privacy").values():
        for record in records:
            assert 8 <= len(record["labels"].split()) <= 20, record
            assert record["labels"].endswith("."), record


def test_copyright_passages_have_expected_length() -> None:
    data = generate("copyright")
    for split in ("unlearn_train", "unlearn_val"):
        for record in data[split]:
            assert 12 <= len(record["labels"].split()) <= 25, record


# --------------------------------------------------------------------------- #
# Determinism and errors
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("domain", DOMAINS)
def test_generate_is_deterministic(domain: str) -> None:
    first, second = generate(domain), generate(domain)
    assert first == second
    assert _digest(first) == _digest(second)


def test_generate_returns_independent_copies() -> None:
    first = generate("privacy")
    first["unlearn_train"][0]["labels"] = "changed"
    first["retention_val"].clear()
    assert generate("privacy") == generate("privacy")
    assert generate("privacy")["unlearn_train"][0]["labels"] != "changed"
    assert len(generate("privacy")["retention_val"]) == 28


def test_output_is_identical_in_other_processes() -> None:
    code = (
        "import hashlib, json\n"
        "from pytest_unlearn.builtin_data import DOMAINS, generate, general_text\n"
        "data = {d: generate(d) for d in DOMAINS}\n"
        "data['general'] = general_text()\n"
        "print(hashlib.sha256(json.dumps(data, sort_keys=True).encode('utf-8')).hexdigest())\n"
    )
    expected = {domain: generate(domain) for domain in DOMAINS}
    expected["general"] = general_text()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    for hash_seed in ("0", "12345"):
        env["PYTHONHASHSEED"] = hash_seed
        result = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert result.stdout.strip() == _digest(expected)


@pytest.mark.parametrize("bad", ["medical", "", "Privacy"])
def test_unknown_domain_raises(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        generate(bad)
    message = str(info.value)
    assert repr(bad) in message
    for domain in DOMAINS:
        assert domain in message


# --------------------------------------------------------------------------- #
# General (out-of-distribution) text
# --------------------------------------------------------------------------- #


def test_general_text_shape() -> None:
    records = general_text()
    assert 150 <= len(records) <= 250
    for record in records:
        _check_record(record)
    texts = [record["text"] for record in records]
    assert len(texts) == len(set(texts))
    assert general_text() == records


def test_general_text_is_outside_both_domains() -> None:
    general = {record["text"] for record in general_text()}
    for domain in DOMAINS:
        data = generate(domain)
        domain_texts = {record["text"] for records in data.values() for record in records}
        assert not general & domain_texts
    # No invented author of the privacy domain shows up in the general text.
    names = _privacy_authors(generate("privacy"))
    blob = json.dumps(general_text())
    assert not [name for name in names if name in blob]


# --------------------------------------------------------------------------- #
# Privacy: val questions ask about facts that the train answers state
# --------------------------------------------------------------------------- #


def _privacy_authors(data: dict[str, list[dict[str, str]]]) -> list[str]:
    """Author names, read back from the e-mail addresses (first.last@domain)."""
    names: list[str] = []
    for record in data["unlearn_train"]:
        for first, last in EMAIL_RE.findall(record["labels"]):
            name = f"{first.capitalize()} {last.capitalize()}"
            if name not in names:
                names.append(name)
    return names


def _profession(label: str, parent: str) -> str | None:
    match = re.search(
        rf"\b{parent}\b[^.,]*?\b(?:a|an) ([a-z]+(?: [a-z]+)?)(?=[,.]| and\b| while\b)", label
    )
    return match.group(1) if match else None


def _sensitive_facts(label: str) -> set[tuple[str, str]]:
    facts = {("email", m.group(0)) for m in EMAIL_RE.finditer(label)}
    facts |= {("address", m.group(0)) for m in ADDRESS_RE.finditer(label)}
    if "father" in label or "mother" in label:
        father, mother = _profession(label, "father"), _profession(label, "mother")
        facts.add(("parents", f"father={father}; mother={mother}"))
    return facts


def _val_fact_problems(data: dict[str, list[dict[str, str]]]) -> list[str]:
    """Every privacy unlearn val answer must restate a sensitive fact that a
    train answer about the same author states.  Returns a list of problems."""
    names = _privacy_authors(data)
    problems: list[str] = []
    train_facts: dict[str, set[tuple[str, str]]] = {}
    for name in names:
        labels = [r["labels"] for r in data["unlearn_train"] if name in r["text"]]
        facts: set[tuple[str, str]] = set()
        for label in labels:
            facts |= _sensitive_facts(label)
        kinds = {kind for kind, _ in facts}
        if kinds != {"email", "address", "parents"}:
            problems.append(f"{name}: train answers state {sorted(kinds)}")
        train_facts[name] = facts
    for record in data["unlearn_val"]:
        owners = [name for name in names if name in record["text"]]
        if len(owners) != 1:
            problems.append(f"val question names {owners}: {record['text']}")
            continue
        facts = _sensitive_facts(record["labels"])
        if not facts:
            problems.append(f"no sensitive fact in val answer: {record['labels']}")
        elif not facts <= train_facts[owners[0]]:
            problems.append(f"val fact not in train answers of {owners[0]}: {record['labels']}")
    return problems


def test_privacy_val_answers_share_sensitive_fact_with_train() -> None:
    data = generate("privacy")
    assert len(_privacy_authors(data)) == 28
    assert _val_fact_problems(data) == []


def test_privacy_every_author_has_one_val_question_per_scope() -> None:
    data = generate("privacy")
    names = _privacy_authors(data)
    for name in names:
        assert sum(name in r["text"] for r in data["unlearn_train"]) == 3, name
        assert sum(name in r["text"] for r in data["unlearn_val"]) == 1, name
        assert sum(name in r["text"] for r in data["retention_train"]) == 4, name
    # Retention val questions name the author or (for the "name" attribute)
    # put the name in the answer instead.
    for name in names:
        hits = [r for r in data["retention_val"] if name in r["text"] or name in r["labels"]]
        assert len(hits) == 1, name


def _tamper(data: dict[str, list[dict[str, str]]], kind: str) -> dict[str, list[dict[str, str]]]:
    """Corrupt the sensitive fact of the first val answer of ``kind``."""
    data = copy.deepcopy(data)
    for record in data["unlearn_val"]:
        label = record["labels"]
        if kind == "email" and EMAIL_RE.search(label):
            record["labels"] = EMAIL_RE.sub("someone.else@example.org", label)
            return data
        if kind == "address" and ADDRESS_RE.search(label):
            record["labels"] = ADDRESS_RE.sub("1 Nowhere Road, Elsewhere", label)
            return data
        if kind == "parents" and "father" in label:
            father = _profession(label, "father")
            assert father is not None
            record["labels"] = label.replace(father, "juggler")
            return data
        if kind == "drop":
            record["labels"] = "This author prefers to keep such details private."
            return data
    raise AssertionError(f"no val record of kind {kind!r}")


@pytest.mark.parametrize("kind", ["email", "address", "parents", "drop"])
def test_val_fact_check_detects_corruption(kind: str) -> None:
    data = generate("privacy")
    assert _val_fact_problems(_tamper(data, kind))
