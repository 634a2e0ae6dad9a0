"""Tests of pytest_unlearn.general_tasks: the builtin lm-eval task files and evaluate() on an
in-memory model, offline.

The model is a toy LLaMA (the conformance battery's architecture, about 60k parameters) with
random weights and a tokenizer trained on the builtin general text: its scores are near
chance, which is all these tests need; a copy with zeroed weights shows that the scores come
from the model's real outputs.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_unlearn import general_tasks
from pytest_unlearn.builtin_tasks import BUILTIN_TASKS, write_builtin_tasks
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.general_tasks import evaluate

LIMIT = 20


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    """(model, tokenizer): a random toy LLaMA and a tokenizer trained on general text."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pytest_unlearn.builtin_data import general_text
    from pytest_unlearn.conformance import TOY_ARCHITECTURE
    from pytest_unlearn.encoding import pad_token_id
    from pytest_unlearn.tiny import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer([r["text"] + "\n\n" + r["labels"] for r in general_text()])
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id(tokenizer),
        **TOY_ARCHITECTURE,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.eval()
    return model, tokenizer


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("general-tasks")
    write_builtin_tasks(folder)
    return folder


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No network: the offline variables are set, also in the libraries that read them at
    import time, and any TCP/UDP connection attempt fails the test."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    real_connect = socket.socket.connect

    def guarded_connect(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


def read_docs(folder: Path, name: str) -> list[dict[str, Any]]:
    lines = (folder / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# --- the task files ----------------------------------------------------------------------


def test_write_builtin_tasks_writes_valid_lm_eval_tasks(task_folder: Path) -> None:
    for name in BUILTIN_TASKS:
        config = yaml.safe_load((task_folder / f"{name}.yaml").read_text(encoding="utf-8"))
        assert config["task"] == name
        assert config["output_type"] == "multiple_choice"
        assert config["dataset_path"] == "json"
        data_file = Path(config["dataset_kwargs"]["data_files"]["test"])
        assert data_file.is_absolute() and data_file == (task_folder / f"{name}.jsonl").resolve()
        assert config["test_split"] == "test"
        assert {"doc_to_text", "doc_to_choice", "doc_to_target"} <= set(config)
        assert [m["metric"] for m in config["metric_list"]] == ["acc", "acc_norm"]

        docs = read_docs(task_folder, name)
        assert 50 <= len(docs) <= 200
        assert len({doc["id"] for doc in docs}) == len(docs)
        assert len({doc["question"] for doc in docs}) == len(docs)
        for doc in docs:
            assert set(doc) == {"id", "question", "choices", "answer"}
            assert isinstance(doc["question"], str) and doc["question"]
            assert len(doc["choices"]) == 4 and len(set(doc["choices"])) == 4
            assert all(isinstance(choice, str) and choice for choice in doc["choices"])
            assert isinstance(doc["answer"], int) and 0 <= doc["answer"] < 4
        # The gold answer is not always in the same place.
        assert len({doc["answer"] for doc in docs}) == 4


def test_builtin_task_content_is_correct(task_folder: Path) -> None:
    question = re.compile(r"What is (\d+) (plus|minus|times) (\d+)\?")
    for doc in read_docs(task_folder, "unlearn_builtin_arith"):
        a, op, b = question.fullmatch(doc["question"]).groups()
        expected = {"plus": int(a) + int(b), "minus": int(a) - int(b), "times": int(a) * int(b)}[op]
        assert doc["choices"][doc["answer"]] == str(expected)
    for doc in read_docs(task_folder, "unlearn_builtin_order"):
        terms = [int(t) for t in doc["question"].rstrip("?").split("sequence ")[1].split(", ")]
        assert doc["choices"][doc["answer"]] == str(2 * terms[-1] - terms[-2])
    from pytest_unlearn.builtin_data import general_text

    answers = {record["text"]: record["labels"] for record in general_text()}
    for doc in read_docs(task_folder, "unlearn_builtin_facts"):
        assert doc["choices"][doc["answer"]] == answers[doc["question"]]


def test_write_builtin_tasks_is_deterministic_and_idempotent(
    task_folder: Path, tmp_path: Path
) -> None:
    files = sorted(task_folder.glob("unlearn_builtin_*"))
    assert len(files) == 2 * len(BUILTIN_TASKS)
    before = {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in files}
    assert write_builtin_tasks(task_folder) == list(BUILTIN_TASKS)
    after = {
        path.name: (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(task_folder.glob("unlearn_builtin_*"))
    }
    assert after == before  # same bytes, and nothing was rewritten
    # Another folder gets the same data bytes; the configs differ only in their paths.
    other = tmp_path / "elsewhere"
    write_builtin_tasks(other)
    for name in BUILTIN_TASKS:
        data = f"{name}.jsonl"
        assert (other / data).read_bytes() == (task_folder / data).read_bytes()
        moved = (
            (other / f"{name}.yaml")
            .read_text()
            .replace(str(other.resolve()), str(task_folder.resolve()))
        )
        assert moved == (task_folder / f"{name}.yaml").read_text()


# --- evaluate() --------------------------------------------------------------------------


def test_evaluate_builtin_tasks_offline_and_deterministic(
    tiny: tuple[Any, Any], task_folder: Path, offline: None
) -> None:
    model, tokenizer = tiny
    first = evaluate(model, tokenizer, BUILTIN_TASKS, include_path=task_folder, limit=LIMIT)
    assert list(first) == list(BUILTIN_TASKS)
    for name, score in first.items():
        assert score["metric"] == "acc", name
        assert 0.0 <= score["value"] <= 1.0, name
        assert score["n"] == LIMIT, name
        assert isinstance(score["stderr"], float) and math.isfinite(score["stderr"]), name
    second = evaluate(model, tokenizer, BUILTIN_TASKS, include_path=task_folder, limit=LIMIT)
    assert second == first


def test_evaluate_writes_builtin_tasks_itself_without_include_path(
    tiny: tuple[Any, Any], task_folder: Path, offline: None
) -> None:
    model, tokenizer = tiny
    names = ["unlearn_builtin_order"]
    assert evaluate(model, tokenizer, names, include_path=None, limit=LIMIT) == evaluate(
        model, tokenizer, names, include_path=task_folder, limit=LIMIT
    )


def test_evaluate_reflects_the_model_outputs(
    tiny: tuple[Any, Any], task_folder: Path, offline: None
) -> None:
    """A model whose embeddings and head are zero gives every token the same probability
    1/V, so it picks the choice with the fewest tokens (the first of equals): its accuracy
    is known in advance, and differs from the random model's."""
    import torch

    model, tokenizer = tiny
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.get_input_embeddings().weight.zero_()
        zeroed.get_output_embeddings().weight.zero_()
    names = list(BUILTIN_TASKS)
    random_scores = evaluate(model, tokenizer, names, include_path=task_folder, limit=None)
    zero_scores = evaluate(zeroed, tokenizer, names, include_path=task_folder, limit=None)

    def token_count(context: str, choice: str) -> int:
        whole = tokenizer(context + " " + choice)["input_ids"]
        return len(whole) - len(tokenizer(context)["input_ids"])

    for name in names:
        docs = read_docs(task_folder, name)
        hits = 0
        for doc in docs:
            context = f"Question: {doc['question']}\nAnswer:"
            counts = [token_count(context, choice) for choice in doc["choices"]]
            hits += counts.index(min(counts)) == doc["answer"]
        assert zero_scores[name]["n"] == random_scores[name]["n"] == len(docs)
        assert zero_scores[name]["value"] == pytest.approx(hits / len(docs), abs=1e-12), name
    assert [s["value"] for s in zero_scores.values()] != [
        s["value"] for s in random_scores.values()
    ]


def test_evaluate_accepts_a_peft_model_and_keeps_its_mode(
    tiny: tuple[Any, Any], task_folder: Path, offline: None
) -> None:
    from pytest_unlearn.models import attach_lora

    model, tokenizer = tiny
    base = evaluate(
        model, tokenizer, ["unlearn_builtin_arith"], include_path=task_folder, limit=LIMIT
    )
    adapted = attach_lora(copy.deepcopy(model))  # a fresh adapter (B = 0) changes nothing
    adapted.train()
    scores = evaluate(
        adapted, tokenizer, ["unlearn_builtin_arith"], include_path=task_folder, limit=LIMIT
    )
    assert scores == base
    assert adapted.training  # HFLM switches to eval mode; evaluate() switches back


def test_evaluate_leaves_global_random_state_alone(
    tiny: tuple[Any, Any], task_folder: Path, offline: None
) -> None:
    import numpy
    import torch

    model, tokenizer = tiny
    random.seed(11)
    numpy.random.seed(11)
    torch.manual_seed(11)
    expected = (random.random(), numpy.random.random(), torch.rand(1).item())
    random.seed(11)
    numpy.random.seed(11)
    torch.manual_seed(11)
    evaluate(model, tokenizer, ["unlearn_builtin_order"], include_path=task_folder, limit=5)
    assert (random.random(), numpy.random.random(), torch.rand(1).item()) == expected


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["no_such_general_task", "unlearn_builtin_typo"])
def test_unknown_task_name_is_a_clear_error(
    tiny: tuple[Any, Any], task_folder: Path, offline: None, name: str
) -> None:
    model, tokenizer = tiny
    with pytest.raises(UnlearnError) as caught:
        evaluate(
            model, tokenizer, ["unlearn_builtin_arith", name], include_path=task_folder, limit=LIMIT
        )
    message = str(caught.value)
    assert repr(name) in message
    assert all(builtin in message for builtin in BUILTIN_TASKS)
    assert "mmlu" in message and "network" in message


def test_dataset_that_cannot_load_offline_is_a_clear_error(
    tiny: tuple[Any, Any], tmp_path: Path, offline: None
) -> None:
    """A task whose data is on the hub (here a local YAML naming a hub data set, so no
    download of lm-eval's index is needed) fails with advice instead of a traceback."""
    (tmp_path / "hub_task.yaml").write_text(
        yaml.safe_dump(
            {
                "task": "unlearn_test_hub_task",
                "dataset_path": "pytest-unlearn/not-downloaded",
                "output_type": "multiple_choice",
                "test_split": "test",
                "doc_to_text": "{{question}}",
                "doc_to_choice": "choices",
                "doc_to_target": "answer",
                "metric_list": [{"metric": "acc"}],
                "metadata": {"version": 1},
            }
        )
    )
    model, tokenizer = tiny
    with pytest.raises(UnlearnError) as caught:
        evaluate(model, tokenizer, ["unlearn_test_hub_task"], include_path=tmp_path, limit=LIMIT)
    message = str(caught.value)
    assert "unlearn_test_hub_task" in message
    assert "HF_DATASETS_OFFLINE" in message and "local copy" in message
    assert all(builtin in message for builtin in BUILTIN_TASKS)


def test_module_imports_no_heavy_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pytest_unlearn.general_tasks; "
        "print(sorted(m for m in ('torch', 'lm_eval', 'transformers', 'datasets') "
        "if m in sys.modules))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "[]"
    assert general_tasks.DEFAULT_REAL_TASKS == (
        "mmlu",
        "arc_challenge",
        "truthfulqa_mc2",
        "social_iqa",
        "race",
    )


def test_damaged_builtin_task_folder_is_a_clear_error(
    tiny: tuple[Any, Any], tmp_path: Path, offline: None
) -> None:
    folder = tmp_path / "tasks"
    write_builtin_tasks(folder)
    (folder / "unlearn_builtin_order.jsonl").unlink()
    model, tokenizer = tiny
    with pytest.raises(UnlearnError, match=r"write_builtin_tasks\(folder\) again"):
        evaluate(model, tokenizer, ["unlearn_builtin_order"], include_path=folder, limit=LIMIT)
