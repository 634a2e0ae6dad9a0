"""Faults and bad input: each ends in a clear message, never in a half-done state."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_unlearn.data import _check_records
from pytest_unlearn.encoding import Encoded, TruncationWarning, encode_all
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.scoring import score
from pytest_unlearn.training import Trainer, TrainSettings


def output_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


# --- property-based: the data loader and the scorer ------------------------------------------

text = st.text(min_size=1, max_size=40).filter(lambda s: s.strip())


@given(st.lists(st.fixed_dictionaries({"text": text, "labels": text}), min_size=1, max_size=20))
def test_loader_keeps_every_valid_record_in_order(records: list[dict[str, str]]) -> None:
    checked = _check_records("file.json", records)
    assert [(r.question, r.answer) for r in checked] == [(r["text"], r["labels"]) for r in records]


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.integers(),
            st.text(),
            st.dictionaries(
                st.sampled_from(["text", "labels", "other"]), st.one_of(st.text(), st.integers())
            ),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_loader_accepts_or_names_the_bad_record(records: list[Any]) -> None:
    try:
        _check_records("file.json", records)
    except UnlearnError as error:
        assert str(error).startswith("file.json, record ")
    else:
        assert all(
            isinstance(r, dict)
            and isinstance(r.get("text"), str)
            and isinstance(r.get("labels"), str)
            for r in records
        )


class Fixed(torch.nn.Module):
    """Returns given logits for any input (the scorer only reads logits)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        return type(
            "Out", (), {"logits": self.logits[: input_ids.shape[0], : input_ids.shape[1]]}
        )()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(2, 8), st.integers(0, 10_000))
def test_scorer_against_a_direct_count(prompt: int, answer: int, vocab: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (prompt + answer,), generator=generator)
    logits = torch.randn(1, prompt + answer, vocab, generator=generator)
    [result] = score(Fixed(logits), [Encoded(tuple(ids.tolist()), prompt, False)], pad_id=0)
    predicted = logits[0, prompt - 1 : -1].argmax(-1)
    expected = (predicted == ids[prompt:]).float().mean().item()
    assert result.token_accuracy == pytest.approx(expected)
    assert result.recalled(1.0) == bool((predicted == ids[prompt:]).all())
    nll = torch.nn.functional.cross_entropy(logits[0, prompt - 1 : -1], ids[prompt:]).item()
    assert -result.mean_logprob == pytest.approx(nll, rel=1e-5, abs=1e-6)


# --- truncation, NaN, out of memory -----------------------------------------------------------


def test_truncation_is_reported_not_silent() -> None:
    from pytest_unlearn.data import Record
    from pytest_unlearn.tiny import train_tiny_tokenizer

    tokenizer = train_tiny_tokenizer(["a short text", "another short one"])
    records = [Record("q?", "word " * 300), Record("q2?", "short")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoded = encode_all(tokenizer, records, 64, "forget")
    [warning] = [w for w in caught if issubclass(w.category, TruncationWarning)]
    assert "1 of 2 forget records are longer than 64 tokens" in str(warning.message)
    assert encoded[0].truncated and len(encoded[0].input_ids) == 64
    assert not encoded[1].truncated


def _trainer(item_losses) -> Trainer:
    model = torch.nn.Linear(2, 1)
    return Trainer(
        model,
        [0, 1, 2, 3],
        item_losses,
        TrainSettings(lr=0.1, epochs=1, batch_size=2, grad_accum=1),
        0,
        "probe",
    )


def test_progress_counts_the_steps_and_checks_still_to_come() -> None:
    """The ETA: the steps left at the recent steps' pace, plus the epoch-end checks left at
    theirs; "up to" when a check may stop training early."""
    import re
    import time

    lines: list[str] = []
    model = torch.nn.Linear(2, 1)

    def losses(batch: list[int]) -> torch.Tensor:
        return model.weight.sum() * torch.ones(len(batch))

    settings = TrainSettings(lr=0.01, epochs=3, batch_size=2, grad_accum=1)
    Trainer(model, [0, 1, 2, 3], losses, settings, 0, "probe", progress=lines.append).run()
    assert lines[0].startswith("probe: step 1/6 loss ") and lines[-1].endswith("eta 0s")
    assert not [line for line in lines if "up to" in line]

    lines.clear()

    def slow_check(epoch: int) -> bool:
        time.sleep(1.2)  # a check as long as scoring every record
        return False

    trainer = Trainer(model, [0, 1, 2, 3], losses, settings, 0, "probe", progress=lines.append)
    trainer.run(after_epoch=slow_check)
    assert all(re.match(r"probe: step \d/up to 6 loss \S+ eta up to \d+s$", line) for line in lines)
    etas = [int(re.search(r"eta up to (\d+)s", line).group(1)) for line in lines]  # type: ignore[union-attr]
    # After the first check, one more is still to come: its time is in the ETA (>= 1.2 s).
    assert etas[2] >= 1 and etas[-1] == 0, lines


def test_non_finite_loss_stops_before_touching_the_weights() -> None:
    trainer = _trainer(
        lambda batch: trainer.model.weight.sum() * torch.full((len(batch),), float("nan"))
    )
    before = trainer.model.weight.detach().clone()
    with pytest.raises(UnlearnError, match="the loss became nan at step 1 of 2.*lower its lr"):
        trainer.run()
    assert torch.equal(trainer.model.weight, before)


def test_item_losses_that_are_not_one_per_item_are_an_error() -> None:
    # A batch mean would be divided by the step's item count a second time.
    trainer = _trainer(lambda batch: trainer.model.weight.sum() * torch.ones(len(batch)).mean())
    with pytest.raises(
        UnlearnError,
        match=r"probe: item_losses returned Tensor of shape \(\) "
        r"for a micro-batch of 2 items; it must return one "
        r"loss per item, a tensor of shape \(2,\)",
    ):
        trainer.run()


def test_out_of_memory_says_what_to_lower() -> None:
    def exhausted(batch):
        raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(
        UnlearnError, match="out of memory on a micro-batch of 2 items. Lower micro_batch_size"
    ):
        _trainer(exhausted).run()


CONFTEST_DIVERGING = """
from dataclasses import dataclass

import torch

import pytest_unlearn
from pytest_unlearn.encoding import pad_token_id
from pytest_unlearn.objectives import encode_records, train_and_report
from pytest_unlearn.training import answer_nll


@dataclass(frozen=True)
class DivergeConfig(pytest_unlearn.TrainSettings):
    pass


class Diverge(pytest_unlearn.UnlearningMethod):
    name = "diverge"
    config_class = DivergeConfig

    def unlearn(self, context):
        model, pad = context.model, pad_token_id(context.tokenizer)
        forget = encode_records(context, context.forget, "forget")
        return train_and_report(context, self.name, self.config, forget,
                                lambda batch: answer_nll(model, batch, pad) * float("inf"))


def pytest_unlearn_register_methods(registry):
    registry.register("diverge", Diverge)
"""


def test_a_diverging_method_fails_its_tests_and_the_others_still_run(
    suite_dir: Path,
    pytester: pytest.Pytester,
    unlearn_cache_dir: Path,
    cache_arg: str,
    warm_cache: dict[str, Any],
) -> None:
    pytester.makeconftest(CONFTEST_DIVERGING)
    result = pytester.runpytest_subprocess(
        "--unlearn-method=diverge,none", cache_arg, "--unlearn-json=r.json", "-p", "no:randomly"
    )
    output = output_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert "diverge privacy: the loss became inf at step 1" in output
    assert "Traceback" not in output
    rows = {
        row["method"]: row for row in json.loads((pytester.path / "r.json").read_text())["rows"]
    }
    assert rows["diverge"]["errors"] == 56
    assert rows["none"]["errors"] == 0 and rows["none"]["retention_success"] >= 0.9
    assert not list((unlearn_cache_dir / "unlearned").glob("*/*/method_config.json")) or all(
        json.loads(p.read_text())["method"] != "diverge"
        for p in (unlearn_cache_dir / "unlearned").glob("*/*/method_config.json")
    )


def test_corrupt_gguf_file_is_a_clear_error(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, tmp_path: Path
) -> None:
    broken = tmp_path / "model.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    result = pytester.runpytest_subprocess(
        f"--model={broken}", "--unlearn-inject=never", "--unlearn-method=none", cache_arg, "-x"
    )
    output = output_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert f"could not load model '{broken}'" in output
    assert "Is the file a complete GGUF model?" in output
    # The failed test reports the message once, not the error again as the cause of the
    # failure ("During handling of the above exception"); the one-line summary at the end
    # (cut to the terminal's width or not) repeats it.
    report = output.split("short test summary info")[0]
    assert report.count(f"could not load model '{broken}'") == 1, output
    assert "During handling" not in output and "UnlearnError" not in output, output


def test_two_processes_build_a_model_once(
    pytester: pytest.Pytester, suite_writer: Any, data_writer: Any, tmp_path: Path
) -> None:
    """Two pytest processes started together on an empty cache: one injects, the other
    waits on the lock and loads the entry."""
    from conftest import write_quick_injection

    suite_writer(pytester.path)
    data = data_writer(tmp_path / "data", records_per_split=3)
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(pytester.path),
        "-p",
        "no:cacheprovider",
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--unlearn-max-new-tokens=4",
        f"--unlearn-config={write_quick_injection(tmp_path)}",
    ]
    runs = [
        subprocess.Popen(
            command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert all(run.returncode in (0, 1) for run in runs), outputs
    injections = sum(
        "[unlearn] inject privacy: done after 4 epochs" in output for output in outputs
    )
    assert injections == 1, outputs
    assert len(list((tmp_path / "cache" / "vanilla").glob("*/*/manifest.json"))) == 1


def test_hub_model_without_network_says_how_to_use_a_local_copy(monkeypatch) -> None:
    import transformers

    from pytest_unlearn.models import ModelSpec, load_pretrained

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    with pytest.raises(UnlearnError) as error:
        load_pretrained(
            ModelSpec.parse("qwen1.5-7b"),
            torch.device("cpu"),
            torch.float32,
            trust_remote_code=False,
        )
    message = str(error.value)
    assert "could not load model 'qwen1.5-7b' (hub Qwen/Qwen1.5-7B-Chat)" in message
    assert "pass the local folder as --unlearn-model=FOLDER" in message


class Exhausted(torch.nn.Module):
    """A model whose every forward pass (and so every generation) runs out of memory."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        raise torch.OutOfMemoryError("CUDA out of memory")


def test_out_of_memory_in_scoring_and_generation_says_what_to_lower() -> None:
    from pytest_unlearn.generation import generate

    encoded = [Encoded((1, 2, 3, 4), 2, False)] * 3
    with pytest.raises(
        UnlearnError,
        match=r"scoring: out of memory on a batch of 3 items of 4 "
        r"tokens. Lower --unlearn-score-batch-size \(now 8",
    ):
        score(Exhausted(), encoded, pad_id=0, batch_size=8)
    tokenizer = type("Tokenizer", (), {"eos_token_id": 0})()
    with pytest.raises(
        UnlearnError,
        match=r"generation: out of memory on a batch of 2 items of 2 "
        r"tokens. Lower --unlearn-score-batch-size \(now 2.*"
        r"--unlearn-max-new-tokens",
    ):
        generate(
            Exhausted(), tokenizer, [(1, 2), (1, 2, 3), (1,)], [4, 4, 4], pad_id=0, batch_size=2
        )


def test_same_command_twice_is_bit_identical_for_every_method(tmp_path: Path) -> None:
    """Every registered method, trained from scratch twice in two empty caches by the same
    command: the same weights (sha256 in the manifests), per-item figures and metrics."""
    from conftest import run_inner_pytest, write_data_folder, write_quick_injection, write_suite

    write_suite(tmp_path)
    data = write_data_folder(tmp_path / "data", records_per_split=4)
    config = write_quick_injection(tmp_path)
    reports = []
    for run in ("first", "second"):
        report = tmp_path / f"{run}.json"
        completed = run_inner_pytest(
            tmp_path,
            "-q",
            "--unlearn-method=all",
            f"--unlearn-data={data}",
            f"--unlearn-cache-dir={tmp_path / run}",
            f"--unlearn-config={config}",
            f"--unlearn-json={report}",
            "--unlearn-max-new-tokens=4",
        )
        assert completed.returncode in (0, 1), (completed.stdout + completed.stderr)[-5000:]
        reports.append(json.loads(report.read_text()))
    first, second = reports
    assert first["run"]["seed"] == 0
    assert len(first["items"]) == 2 * 4 * len(first["run"]["methods"])
    assert all(row["errors"] == 0 for row in first["rows"]), first["rows"]
    assert first["items"] == second["items"]
    for row in (*first["rows"], *second["rows"]):
        row.pop("method_log")  # holds step times
    assert first["rows"] == second["rows"]

    def weights(run: str) -> list[str]:
        return sorted(
            json.loads(path.read_text())["files"]["weights.safetensors"]
            for path in (tmp_path / run).glob("*/*/*/manifest.json")
            if "weights.safetensors" in json.loads(path.read_text())["files"]
        )

    assert len(weights("first")) == len(first["run"]["methods"])  # vanilla + one per method
    assert weights("first") == weights("second")
