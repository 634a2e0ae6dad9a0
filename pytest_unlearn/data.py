"""KnowUnDo data: loading the builtin set, a local folder or the hub, and checking it.

A domain's data has four splits: the Unlearn Scope and the Retention Scope, each with a
train part (used by unlearning) and a val part (the items under test). Knowledge injection
trains on all four.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import builtin_data
from .errors import UnlearnError
from .parsing import HUB_ID, Origin, did_you_mean
from .vocabulary import BUILTIN_DATA, DOMAINS, KNOWUNDO_HUB_ID, PARTS, SCOPES, SPLITS

__all__ = [
    "Record",
    "Item",
    "DomainData",
    "load_domain",
    "load_general_text",
    "read_utf8",
    "records_hash",
    "question_key",
    "check_data_spec",
    "check_ood_data",
]


@dataclass(frozen=True)
class Record:
    """One question and its answer, and where it was read (for messages; two records with
    the same question and answer are equal wherever they come from)."""

    question: str
    answer: str
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class Item:
    """One val record under test, with a stable id: domain, scope and index in its split."""

    domain: str
    scope: str
    index: int
    record: Record

    @property
    def id(self) -> str:
        return f"{self.domain}-{self.scope}-{self.index:03d}"


@dataclass(frozen=True)
class DomainData:
    """The four splits of one domain, checked, plus where they came from."""

    domain: str
    source: str
    splits: dict[str, tuple[Record, ...]]
    # Unlearn Scope records that no model trains on (``holdout.py``), taken out of
    # unlearn_train; empty with --unlearn-holdout=0.
    holdout: tuple[Record, ...] = ()

    def items(self) -> list[Item]:
        """Every val record of both scopes, in file order: unlearn first, then retention."""
        return [
            Item(self.domain, scope, index, record)
            for scope in SCOPES
            for index, record in enumerate(self.splits[f"{scope}_val"])
        ]

    def all_records(self) -> list[Record]:
        """What knowledge injection trains on: train and val of both scopes."""
        return [record for split in SPLITS for record in self.splits[split]]

    def record_scopes(self) -> list[str]:
        """The scope of each record of `all_records`, in its order."""
        return [split.split("_")[0] for split in SPLITS for _ in self.splits[split]]

    def content_hash(self) -> str:
        payload = {split: [[r.question, r.answer] for r in self.splits[split]] for split in SPLITS}
        if self.holdout:  # without one, the hash (and every model's key) is as it was
            payload["holdout"] = [[r.question, r.answer] for r in self.holdout]
        return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def load_domain(spec: str, domain: str) -> DomainData:
    """Load one domain from a data spec already checked by `settings.check_data_spec`."""
    if domain not in DOMAINS:
        raise UnlearnError(f"unknown domain {domain!r}; the domains are {', '.join(DOMAINS)}")
    if spec == BUILTIN_DATA:
        raw = builtin_data.generate(domain)
        return _check(
            domain,
            f"builtin:{domain}",
            {split: (f"builtin {domain} {split}", raw[split]) for split in SPLITS},
        )
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_folder(path, domain)
    return _load_hub(spec, domain)


def load_general_text(spec: str = BUILTIN_DATA) -> list[Record]:
    """Out-of-distribution retain text: 'builtin' (general text outside both domains that the
    project writes itself) or a JSON array / JSONL file of {"text", "labels"} records."""
    if spec == BUILTIN_DATA:
        return _check_records("builtin general text", builtin_data.general_text())
    path = Path(spec).expanduser()
    text = read_utf8(path)
    if path.suffix.lower() == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise UnlearnError(
                    f"{path}: line {number} is not valid JSON ({error.msg} at "
                    f"column {error.colno}). Each line of a .jsonl file holds "
                    'one {"text", "labels"} record.'
                ) from None
        return _check_records(str(path), records)
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise UnlearnError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column "
            f"{error.colno}). The file holds a JSON array of "
            '{"text", "labels"} records.'
        ) from None
    return _check_records(str(path), records)


def read_utf8(path: Path) -> str:
    """A text file the user named, as UTF-8; an unreadable one is an error naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise UnlearnError(
            f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8"
        ) from None
    except OSError as error:
        raise UnlearnError(f"{path}: cannot be read ({error.strerror})") from None


def records_hash(records: list[Record]) -> str:
    payload = [[record.question, record.answer] for record in records]
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode()).hexdigest()


def _load_folder(path: Path, domain: str) -> DomainData:
    folder = path / domain if (path / domain).is_dir() else path
    if folder == path and path.name in DOMAINS and path.name != domain:
        raise UnlearnError(
            f"--unlearn-data={path} holds the {path.name!r} domain (by its name), but the "
            f"{domain!r} suite asks for {domain!r} data. Run suites/{path.name}, or pass a folder "
            f"that holds a {domain}/ subfolder."
        )
    missing = [f"{split}.json" for split in SPLITS if not (folder / f"{split}.json").is_file()]
    if missing:
        raise UnlearnError(
            f"--unlearn-data={path}: {folder} lacks {', '.join(missing)}. A data folder holds "
            "unlearn_train.json, unlearn_val.json, retention_train.json and retention_val.json "
            f'(JSON arrays of {{"text", "labels"}}), directly or in a {domain}/ subfolder.'
        )
    raw: dict[str, tuple[str, Any]] = {}
    for split in SPLITS:
        file = folder / f"{split}.json"
        try:
            raw[split] = (str(file), json.loads(read_utf8(file)))
        except json.JSONDecodeError as error:
            raise UnlearnError(
                f"{file}: not valid JSON ({error.msg} at line {error.lineno}, "
                f"column {error.colno}). Fix or replace the file."
            ) from None
    return _check(domain, str(folder.resolve()), raw)


def _load_hub(hub_id: str, domain: str) -> DomainData:
    """The hub layout: config = domain, splits unlearn/retention, ONE row with list columns."""
    try:
        from datasets import load_dataset
    except ImportError as error:  # pragma: no cover - datasets is a dependency
        raise UnlearnError(f"loading {hub_id} needs the 'datasets' package: {error}") from None
    raw: dict[str, tuple[str, Any]] = {}
    for scope in SCOPES:
        where = f"{hub_id} (config {domain!r}, split {scope!r})"
        try:
            rows = load_dataset(hub_id, name=domain, split=scope)
        except Exception as error:  # network, auth, missing config: all end the same way
            raise UnlearnError(
                f"could not load {where}: {type(error).__name__}: {error}. Without network "
                f"access, download the data once elsewhere (datasets.load_dataset({hub_id!r}, "
                f"name={domain!r})) and save each split's train/val lists as "
                f"{{unlearn,retention}}_{{train,val}}.json in a folder, then pass "
                "--unlearn-data=FOLDER."
            ) from None
        if len(rows) != 1 or not {"train", "val"} <= set(rows.column_names):
            raise UnlearnError(
                f"{where}: expected one row with list columns 'train' and 'val', "
                f"got {len(rows)} rows with columns {rows.column_names}"
            )
        for part in PARTS:
            raw[f"{scope}_{part}"] = (f"{where}, column {part!r}", rows[0][part])
    return _check(domain, f"{hub_id}:{domain}", raw)


def _check(domain: str, source: str, raw: dict[str, tuple[str, Any]]) -> DomainData:
    splits = {split: tuple(_check_records(*raw[split])) for split in SPLITS}
    seen: dict[str, str] = {}
    for split in SPLITS:
        for index, record in enumerate(splits[split]):
            where = f"{raw[split][0]}, record {index}"
            key = question_key(record.question)
            if key in seen:
                raise UnlearnError(
                    f"{where}: the question {record.question!r} also appears at {seen[key]}. "
                    "Each question must appear once: a duplicate makes one item count twice or "
                    "puts the same fact in both scopes. Remove one of them."
                )
            seen[key] = where
    return DomainData(domain, source, splits)


# Characters that print as nothing: two questions that differ by them alone look the same.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u180e\u200b\u200c\u200d\u2060\ufeff"))


def question_key(question: str) -> str:
    """What makes two questions the same question: equal after Unicode NFKC normalization
    (full-width letters, ligatures and other compatibility forms become their plain
    letters), with invisible characters (zero-width spaces and joiners, the soft hyphen,
    the byte-order mark) removed and runs of white space read as one space."""
    return " ".join(unicodedata.normalize("NFKC", question).translate(_INVISIBLE).split())


def _check_records(where: str, records: Any) -> list[Record]:
    if not isinstance(records, list):
        raise UnlearnError(
            f'{where}: expected a JSON array of {{"text", "labels"}} objects, '
            f"got {type(records).__name__}"
        )
    if not records:
        raise UnlearnError(f"{where}: the split is empty; every split needs at least one record")
    checked = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise UnlearnError(
                f"{where}, record {index}: expected an object with 'text' and "
                f"'labels', got {type(record).__name__}"
            )
        for key in ("text", "labels"):
            if key not in record:
                raise UnlearnError(
                    f"{where}, record {index}: missing field {key!r} (has: "
                    f"{', '.join(map(str, record)) or 'nothing'})"
                )
            if not isinstance(record[key], str):
                raise UnlearnError(
                    f"{where}, record {index}: field {key!r} must be a string, got "
                    f"{type(record[key]).__name__} {record[key]!r:.60}"
                )
            if not record[key].strip():
                raise UnlearnError(f"{where}, record {index}: field {key!r} is empty")
        checked.append(
            Record(
                question=record["text"], answer=record["labels"], where=f"{where}, record {index}"
            )
        )
    return checked


def check_data_spec(spec: str, origin: Origin | None = None) -> str:
    """Accept 'builtin', an existing folder, or an owner/name hub id."""
    origin = origin or Origin("--unlearn-data", "unlearn_data")
    if spec == BUILTIN_DATA:
        return spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return spec
    if path.exists():
        raise UnlearnError(
            f"{origin.label(spec)} is a file; pass the folder that holds "
            "unlearn_train.json, unlearn_val.json, retention_train.json and retention_val.json"
        )
    if HUB_ID.match(spec) and not spec.startswith("."):
        return spec
    raise UnlearnError(
        f"{origin.place}: unknown dataset {spec!r}"
        f"{did_you_mean(spec, [BUILTIN_DATA, KNOWUNDO_HUB_ID])}: no such "
        f"folder (looked in {Path.cwd()}) and not a hub id of the form owner/name. Available: "
        f"'{BUILTIN_DATA}' (data the plugin writes itself), '{KNOWUNDO_HUB_ID}' (the hub), or a "
        "folder with {unlearn,retention}_{train,val}.json"
    )


def check_ood_data(origin: Origin, text: str) -> str:
    if text == BUILTIN_DATA or Path(text).expanduser().is_file():
        return text
    raise UnlearnError(
        f"{origin.label(text)}: no such file (looked in {Path.cwd()}). Use "
        f'\'{BUILTIN_DATA}\' or a JSON array / JSONL file of {{"text", "labels"}} records.'
    )
