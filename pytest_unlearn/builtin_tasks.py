"""The builtin general-ability tasks: three small multiple-choice tasks generated
deterministically in code, written to disk as ordinary lm-eval task files (a YAML config
plus a JSON Lines data file), so that the general suite runs offline and on the tiny model.

- ``unlearn_builtin_arith``: small sums, differences and products;
- ``unlearn_builtin_facts``: everyday and invented-geography facts of the builtin general
  text, the distractors taken from other records;
- ``unlearn_builtin_order``: the next number of an arithmetic progression.

Each has 100 documents and four choices per document.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import uuid
from pathlib import Path
from typing import Any

from .builtin_data import general_text
from .errors import UnlearnError

__all__ = ["BUILTIN_TASKS", "write_builtin_tasks"]

# The project's own offline tasks.
BUILTIN_TASKS: tuple[str, ...] = (
    "unlearn_builtin_arith",
    "unlearn_builtin_facts",
    "unlearn_builtin_order",
)
# Seeds of the builtin generators: changing one changes the task, so bump _TASK_VERSION too.
_ARITH_SEED = 70_913
_FACTS_SEED = 70_927
_ORDER_SEED = 70_949
_TASK_VERSION = 1
_DOCS_PER_TASK = 100
# Subfolder of an include path where `datasets` keeps its Arrow cache of the builtin data,
# so evaluating them never writes to the user's global Hugging Face cache.
_DATASETS_CACHE = "hf_datasets_cache"
_ARITHMETIC_QUESTION = re.compile(r"^What is -?\d+ (plus|minus|times) -?\d+\?$")


# --------------------------------------------------------------------------------------- #
# The builtin tasks
# --------------------------------------------------------------------------------------- #

Doc = dict[str, Any]


def _place_gold(rng: random.Random, gold: str, distractors: list[str]) -> tuple[list[str], int]:
    """Shuffle the gold answer in among the distractors; return (choices, gold index)."""
    choices = [gold, *distractors]
    rng.shuffle(choices)
    return choices, choices.index(gold)


def _arith_docs() -> list[Doc]:
    """Small sums, differences and products, four numeric choices each."""
    rng = random.Random(_ARITH_SEED)
    docs: list[Doc] = []
    seen: set[str] = set()
    while len(docs) < _DOCS_PER_TASK:
        op = rng.choice(("plus", "minus", "times"))
        if op == "times":
            a, b = rng.randint(2, 12), rng.randint(2, 12)
            result = a * b
            near = [result + a, result - a, result + b, result - b, result + 1, result - 1]
        else:
            a, b = rng.randint(10, 99), rng.randint(2, 60)
            result = a + b if op == "plus" else a - b
            near = [result + 1, result - 1, result + 2, result - 2, result + 10, result - 10]
        question = f"What is {a} {op} {b}?"
        if question in seen:
            continue
        seen.add(question)
        candidates = sorted({value for value in near if value != result})
        distractors = [str(value) for value in rng.sample(candidates, 3)]
        choices, gold = _place_gold(rng, str(result), distractors)
        docs.append(
            {
                "id": f"arith-{len(docs):03d}",
                "question": question,
                "choices": choices,
                "answer": gold,
            }
        )
    return docs


def _facts_docs() -> list[Doc]:
    """Everyday and invented-geography facts of `builtin_data.general_text()` (arithmetic
    records left out). The three distractors are the answers of other records, taken from
    records whose question starts like this one's where there are enough of them (the
    mountain of another land, the hours in other days), so the choices read alike."""
    records = [
        record for record in general_text() if not _ARITHMETIC_QUESTION.match(record["text"])
    ]
    rng = random.Random(_FACTS_SEED)
    docs: list[Doc] = []
    for index, record in enumerate(records):
        others = [
            other
            for j, other in enumerate(records)
            if j != index and other["labels"] != record["labels"]
        ]
        pool = [other["labels"] for other in others]
        words = record["text"].split()
        for width in (4, 3, 2):
            alike = [
                other["labels"]
                for other in others
                if other["text"].split()[:width] == words[:width]
            ]
            if len(alike) >= 3:
                pool = alike
                break
        choices, gold = _place_gold(rng, record["labels"], rng.sample(pool, 3))
        docs.append(
            {
                "id": f"facts-{index:03d}",
                "question": record["text"],
                "choices": choices,
                "answer": gold,
            }
        )
    return docs


def _order_docs() -> list[Doc]:
    """Continue an arithmetic progression: which number comes next?"""
    rng = random.Random(_ORDER_SEED)
    docs: list[Doc] = []
    seen: set[str] = set()
    while len(docs) < _DOCS_PER_TASK:
        start, step = rng.randint(1, 40), rng.randint(1, 9)
        terms = [start + step * k for k in range(4)]
        question = f"What number comes next in the sequence {', '.join(map(str, terms))}?"
        if question in seen:
            continue
        seen.add(question)
        result = terms[-1] + step
        near = [result + 1, result - 1, result + step, terms[-1], result + 2 * step, result - 2]
        candidates = sorted({value for value in near if value != result and value > 0})
        distractors = [str(value) for value in rng.sample(candidates, 3)]
        choices, gold = _place_gold(rng, str(result), distractors)
        docs.append(
            {
                "id": f"order-{len(docs):03d}",
                "question": question,
                "choices": choices,
                "answer": gold,
            }
        )
    return docs


_GENERATORS = {
    "unlearn_builtin_arith": (_arith_docs, "small arithmetic (plus, minus, times), 4 choices"),
    "unlearn_builtin_facts": (
        _facts_docs,
        "everyday facts from the builtin general text, distractors from other records",
    ),
    "unlearn_builtin_order": (_order_docs, "next number of an arithmetic progression"),
}


def _task_config(name: str, data_file: Path, cache_dir: Path, description: str) -> dict[str, Any]:
    """The lm-eval YAML config of one builtin task."""
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file)}, "cache_dir": str(cache_dir)},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "Question: {{question}}\nAnswer:",
        "doc_to_choice": "choices",
        "doc_to_target": "answer",
        "num_fewshot": 0,
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {
            "version": _TASK_VERSION,
            "description": description,
            "source": "pytest_unlearn.general_tasks",
        },
    }


def _write_if_changed(path: Path, content: str) -> None:
    """Write ``content`` atomically, and only when the file does not already hold it (so
    repeated calls keep the file's mtime, and with it the datasets cache, valid)."""
    data = content.encode("utf-8")
    if path.is_file() and path.read_bytes() == data:
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("xb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_builtin_tasks(folder: Path) -> list[str]:
    """Write the builtin lm-eval tasks into ``folder`` and return their names.

    Each task is ``<name>.yaml`` (an lm-eval task config whose ``data_files`` is the absolute
    path of the data) and ``<name>.jsonl`` (one document a line: ``id``, ``question``,
    ``choices``, ``answer`` = index of the gold choice). The output is deterministic, and a
    second call rewrites nothing. Pass the folder as ``include_path`` to `evaluate`.
    """
    import yaml

    folder = Path(folder).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, (generate, description) in _GENERATORS.items():
            docs = generate()
            data_file = folder / f"{name}.jsonl"
            _write_if_changed(
                data_file,
                "".join(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n" for doc in docs),
            )
            config = _task_config(name, data_file, folder / _DATASETS_CACHE, description)
            header = (
                f"# lm-eval task written by pytest_unlearn.general_tasks "
                f"(version {_TASK_VERSION}); regenerate with write_builtin_tasks().\n"
            )
            _write_if_changed(
                folder / f"{name}.yaml",
                header + yaml.safe_dump(config, sort_keys=False, width=100, allow_unicode=True),
            )
    except OSError as error:
        raise UnlearnError(
            f"could not write the builtin general tasks into {folder}: "
            f"{error.strerror or error}. Pass a writable folder."
        ) from None
    return list(_GENERATORS)
