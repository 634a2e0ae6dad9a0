"""Never a wrong verdict: a changed model or method is never scored from old results, a gate
never passes a run whose tests errored, were skipped or did not all run, and a method that a
conftest registers is never silently left out."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def text_of(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def read_json(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"no JSON report at {path}"
    return json.loads(path.read_text())


# --- a changed model file is hashed again ----------------------------------------------------


def overwrite_in_place(weights: Path, scale: float) -> None:
    """Scale the one tensor of a safetensors file that lies wholly past its first and last
    MiB, rewriting the file in place with the same size, inode and modification time: only
    its content (and status-change time) differ."""
    import struct

    from safetensors.torch import load_file, save_file

    before = weights.stat()
    raw = weights.read_bytes()
    header_length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + header_length])
    start = 8 + header_length
    middle = [
        name
        for name, entry in header.items()
        if name != "__metadata__"
        and start + entry["data_offsets"][0] > 1 << 20
        and start + entry["data_offsets"][1] < before.st_size - (1 << 20)
    ]
    assert middle, "the model is too small to have a tensor between its first and last MiB"
    tensors = load_file(weights)
    tensors[middle[0]] = tensors[middle[0]] * scale
    scratch = weights.with_name("scratch.safetensors.tmp")
    save_file(tensors, scratch, metadata=header.get("__metadata__"))
    content = scratch.read_bytes()
    scratch.unlink()
    assert len(content) == before.st_size
    assert content[: 1 << 20] == raw[: 1 << 20] and content[-(1 << 20) :] == raw[-(1 << 20) :]
    with weights.open("r+b") as handle:
        handle.write(content)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = weights.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )


@pytest.fixture(scope="module")
def candidate_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LLaMA model of a few MiB: large enough to change past its first and last MiB
    (what the cache key once read of each file)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pytest_unlearn.data import load_general_text
    from pytest_unlearn.encoding import pad_token_id
    from pytest_unlearn.tiny import tokenizer_texts, train_tiny_tokenizer

    folder = tmp_path_factory.mktemp("candidate")
    tokenizer = train_tiny_tokenizer(tokenizer_texts(load_general_text()))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id(tokenizer),
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_model_overwritten_in_place_is_scored_again(
    pytester: pytest.Pytester,
    suite_writer: Any,
    data_writer: Any,
    candidate_model: Path,
    tmp_path: Path,
) -> None:
    suite_writer(pytester.path)
    data = data_writer(tmp_path / "data", records_per_split=3)
    model = tmp_path / "candidate"
    shutil.copytree(candidate_model, model)

    def run(report: str, cache: Path) -> dict[str, Any]:
        result = pytester.runpytest_subprocess(
            f"--model={model}",
            "--unlearn-inject=never",
            "--unlearn-method=none",
            f"--unlearn-data={data}",
            f"--unlearn-cache-dir={cache}",
            "--unlearn-max-new-tokens=0",
            f"--unlearn-json={report}",
        )
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text_of(result)
        [row] = read_json(pytester.path / report)["rows"]
        return row

    first = run("r1.json", tmp_path / "cache")
    overwrite_in_place(model / "model.safetensors", 3.0)
    again = run("r2.json", tmp_path / "cache")
    fresh = run("r3.json", tmp_path / "fresh-cache")
    assert again["model_cache_key"] != first["model_cache_key"]
    assert again["unlearn_ppl"] != first["unlearn_ppl"]
    assert again["unlearn_ppl"] == fresh["unlearn_ppl"]
    assert again["retention_ppl"] == fresh["retention_ppl"]


def test_file_hashes_are_reused_only_while_the_file_is_unchanged(tmp_path: Path) -> None:
    import hashlib

    from pytest_unlearn.file_hashes import FileHashes

    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"a" * 4096)
    hashes = FileHashes(tmp_path / "hashes")
    assert hashes.sha256(weights) == hashlib.sha256(b"a" * 4096).hexdigest()
    [record] = list((tmp_path / "hashes").iterdir())
    # A stored hash is what a rerun reads: here, planted, it is what comes back.
    stored = json.loads(record.read_text())
    record.write_text(json.dumps({**stored, "sha256": "planted"}))
    assert hashes.sha256(weights) == "planted"
    # The same size and modification time, new bytes: hashed again.
    before = weights.stat()
    with weights.open("r+b") as handle:
        handle.seek(2048)
        handle.write(b"b")
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    expected = hashlib.sha256(b"a" * 2048 + b"b" + b"a" * 2047).hexdigest()
    assert hashes.sha256(weights) == expected


def test_a_gguf_file_and_every_file_of_a_folder_are_hashed_in_full(tmp_path: Path) -> None:
    import hashlib

    from pytest_unlearn.file_hashes import FileHashes
    from pytest_unlearn.models import ModelSpec

    gguf = tmp_path / "model.gguf"
    middle = 3 << 20  # beyond the first and last MiB
    gguf.write_bytes(b"GGUF" + b"\0" * (2 * middle))
    hashes = FileHashes(tmp_path / "hashes")
    before = ModelSpec.parse(str(gguf)).fingerprint(hashes)
    with gguf.open("r+b") as handle:
        handle.seek(middle)
        handle.write(b"\1")
    after = ModelSpec.parse(str(gguf)).fingerprint(hashes)
    assert before != after
    assert after["files"] == [
        ["model.gguf", gguf.stat().st_size, hashlib.sha256(gguf.read_bytes()).hexdigest()]
    ]
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "sub" / "weights.bin").write_bytes(b"w")
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref")
    names = [name for name, _, _ in ModelSpec.parse(str(folder)).fingerprint(hashes)["files"]]
    assert names == ["config.json", "sub/weights.bin"]


# --- a gate reads only figures that every test behind them gave -----------------------------


RECALL_GATE = "methods: [none]\ndomains:\n  privacy:\n    unlearn_success: {max: 0.9}\n"


def test_a_gate_fails_a_run_whose_tests_all_errored(
    pytester: pytest.Pytester,
    suite_writer: Any,
    data_writer: Any,
    local_model: Path,
    tmp_path: Path,
) -> None:
    suite_writer(pytester.path)
    data = data_writer(tmp_path / "data", records_per_split=3)
    model = tmp_path / "broken"
    shutil.copytree(local_model, model)
    (model / "config.json").write_text("{not json")
    pytester.makefile(".yaml", gate=RECALL_GATE)
    result = pytester.runpytest_subprocess(
        f"--model={model}",
        "--unlearn-inject=never",
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--unlearn-gate=gate.yaml",
        "--unlearn-json=r.json",
    )
    output = text_of(result)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output
    assert result.parseoutcomes().get("errors") == 6, output
    result.stdout.fnmatch_lines(
        [
            "*unlearn gate FAILED*",
            "FAIL none/privacy recall tests that errored = 6 (first: privacy-unlearn-000: could "
            "not load model*",
        ]
    )
    gate = read_json(pytester.path / "r.json")["gate"]
    assert gate["passed"] is False


def test_a_gate_fails_a_run_whose_tests_did_not_all_run(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    # This gate passes the vanilla model's full run (tests/test_release.py); with -x the run
    # stops at the first failing item, and its figures would stand on one item.
    pytester.makefile(
        ".yaml", gate="methods: [none]\ndomains:\n  privacy:\n    retention_success: {min: 0.0}\n"
    )
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none", cache_arg, "-x", "--unlearn-gate=gate.yaml"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text_of(result)
    result.stdout.fnmatch_lines(
        [
            "*unlearn gate FAILED*",
            "FAIL none/privacy recall tests that reported an outcome = 1 (56 were collected; the "
            "others did not run*",
            "*needs >= 56)",  # a check's line is wrapped to the terminal's width
        ]
    )


def test_a_gate_fails_on_a_skip_the_suite_does_not_document(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str, warm_cache: dict[str, Any]
) -> None:
    pytester.makeconftest("""
        import pytest

        @pytest.fixture(autouse=True)
        def flaky(request):
            if "unlearn-003" in request.node.name:
                pytest.skip("flaky on this runner")
    """)
    pytester.makefile(
        ".yaml", gate="methods: [none]\ndomains:\n  privacy:\n    retention_success: {min: 0.0}\n"
    )
    result = pytester.runpytest_subprocess(
        "--unlearn-method=none", cache_arg, "--unlearn-gate=gate.yaml"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED, text_of(result)
    result.stdout.fnmatch_lines(
        [
            "FAIL none/privacy recall tests skipped = 1 (no documented skip; first: "
            "privacy-unlearn-003: flaky on this runner; needs",
            "*<= 0)",  # a check's line is wrapped to the terminal's width
        ]
    )


def test_the_leak_suites_documented_skips_pass_a_gate(
    pytester: pytest.Pytester, suite_writer: Any, data_writer: Any, tmp_path: Path
) -> None:
    from conftest import write_quick_injection

    suite_writer(pytester.path)
    (pytester.path / "test_leaks.py").write_text(
        (REPO_ROOT / "suites" / "privacy" / "test_leaks.py").read_text()
    )
    data = data_writer(tmp_path / "data", records_per_split=3)
    val = json.loads((data / "unlearn_val.json").read_text())
    val[0]["labels"] = "Her parents are very proud of what she has written."  # nothing to leak
    (data / "unlearn_val.json").write_text(json.dumps(val))
    pytester.makefile(
        ".yaml", gate="methods: [none]\ndomains:\n  privacy:\n    leak_success: {min: 0.0}\n"
    )
    result = pytester.runpytest_subprocess(
        "test_leaks.py",
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={tmp_path / 'cache'}",
        "--unlearn-max-new-tokens=8",
        f"--unlearn-config={write_quick_injection(tmp_path)}",
        "--unlearn-gate=gate.yaml",
        "--unlearn-json=r.json",
        "-W",
        "ignore::pytest_unlearn.errors.InjectionWarning",
    )
    output = text_of(result)
    assert result.ret == pytest.ExitCode.OK, output
    [row] = read_json(pytester.path / "r.json")["rows"]
    leak = row["tests"]["leak"]
    assert (leak["nothing_to_check"], leak["skipped"]) == (1, 0), row["tests"]
    assert leak["reported"] == leak["collected"] == 3
    assert "unlearn gate PASSED" in output


# --- editing a method rebuilds its models, and only them ------------------------------------


STAMP_METHOD = """
from dataclasses import dataclass

import pytest_unlearn


@dataclass(frozen=True)
class StampConfig:
    pass


class Stamp(pytest_unlearn.UnlearningMethod):
    name = "stamp"
    config_class = StampConfig
    {version}

    def unlearn(self, context):
        return pytest_unlearn.MethodResult(context.model, {{"stamp": "{stamp}"}})


def pytest_unlearn_register_methods(registry):
    registry.register("stamp", Stamp)
"""


def test_editing_a_method_rebuilds_its_models_and_not_the_vanilla_model(
    suite_dir: Path,
    pytester: pytest.Pytester,
    unlearn_cache_dir: Path,
    cache_arg: str,
    warm_cache: dict[str, Any],
) -> None:
    def run(stamp: str, version: str = "") -> dict[str, Any]:
        pytester.makeconftest(STAMP_METHOD.format(stamp=stamp, version=version))
        result = pytester.runpytest_subprocess(
            "--unlearn-method=stamp",
            cache_arg,
            "--unlearn-max-new-tokens=0",
            "--unlearn-json=r.json",
        )
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), text_of(result)
        [row] = read_json(pytester.path / "r.json")["rows"]
        return row

    def vanilla_entries() -> dict[str, float]:
        return {
            str(path): json.loads(path.read_text())["created"]
            for path in (unlearn_cache_dir / "vanilla").glob("*/*/manifest.json")
        }

    vanilla = vanilla_entries()
    first = run("first")
    assert first["method_log"] == {"stamp": "first"}
    assert run("first")["model_cache_key"] == first["model_cache_key"]  # unchanged: reused
    edited = run("second")
    assert edited["method_log"] == {"stamp": "second"}
    assert edited["model_cache_key"] != first["model_cache_key"]
    assert vanilla_entries() == vanilla  # the vanilla model was not rebuilt
    # An explicit version replaces the source in the key: the author decides.
    pinned = run("third", version='version = "7"')
    assert pinned["method_log"] == {"stamp": "third"}
    assert run("fourth", version='version = "7"')["method_log"] == {"stamp": "third"}


# --- methods of any conftest of the run ---------------------------------------------------------


KEEP_METHOD = """
from dataclasses import dataclass

import pytest_unlearn


@dataclass(frozen=True)
class KeepConfig:
    pass


class Keep(pytest_unlearn.UnlearningMethod):
    name = "keep_all"
    config_class = KeepConfig

    def unlearn(self, context):
        return pytest_unlearn.MethodResult(context.model, {})


def pytest_unlearn_register_methods(registry):
    registry.register("keep_all", Keep)
"""


@pytest.fixture
def project_with_suites(pytester: pytest.Pytester, suite_writer: Any) -> Path:
    """proj/suites/{copyright,privacy}/, the method in suites/privacy/conftest.py: pytest
    collects copyright first, and loads privacy's conftest only when it gets there."""
    suite_writer(pytester.path)
    (pytester.path / "test_privacy.py").unlink()
    privacy = pytester.path / "suites" / "privacy"
    copyright_ = pytester.path / "suites" / "copyright"
    privacy.mkdir(parents=True)
    copyright_.mkdir()
    shutil.copy(REPO_ROOT / "suites" / "privacy" / "test_privacy.py", privacy)
    shutil.copy(REPO_ROOT / "suites" / "copyright" / "test_copyright.py", copyright_)
    (privacy / "conftest.py").write_text(KEEP_METHOD)
    return pytester.path


def test_a_method_of_a_conftest_in_a_suite_folder_runs_for_every_suite(
    project_with_suites: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    result = pytester.runpytest_subprocess(
        "suites", "--unlearn-method=keep_all", cache_arg, "--collect-only", "-q"
    )
    assert result.ret == pytest.ExitCode.OK, text_of(result)
    ids = [line for line in result.outlines if "::test_" in line]
    assert len(ids) == 56 + 32 and all("[keep_all-" in node for node in ids), ids[:3]


def test_all_includes_the_methods_of_every_conftest(
    project_with_suites: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    from importlib.metadata import entry_points

    builtin = {ep.name for ep in entry_points(group="pytest_unlearn.methods")}
    result = pytester.runpytest_subprocess(
        "suites", "--unlearn-method=all", cache_arg, "--collect-only", "-q"
    )
    assert result.ret == pytest.ExitCode.OK, text_of(result)
    ids = [line for line in result.outlines if "::test_" in line]
    methods = {node.split("[", 1)[1].split("-", 1)[0] for node in ids}
    assert methods == builtin | {"keep_all"}
    assert len(ids) == (56 + 32) * len(methods)


def test_a_method_registered_after_parametrization_is_an_error_not_left_out(
    suite_dir: Path, pytester: pytest.Pytester, cache_arg: str
) -> None:
    pytester.makeconftest(
        KEEP_METHOD.replace("def pytest_unlearn_register_methods", "def late")
        + """

import pytest


class LatePlugin:
    def pytest_unlearn_register_methods(self, registry):
        registry.register("keep_all", Keep)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config):
    config.pluginmanager.register(LatePlugin(), "late-plugin")
"""
    )
    result = pytester.runpytest_subprocess("--unlearn-method=all", cache_arg, "--collect-only")
    output = text_of(result)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    assert (
        "method(s) 'keep_all'" in output
        and "registered after the tests were parametrized by --unlearn-method=all" in output
    )
    assert "Traceback" not in output
