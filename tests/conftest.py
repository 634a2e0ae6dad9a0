"""Fixtures of the plugin's black-box tests.

Every model run of the tests shares one cache directory (``unlearn_cache_dir``), so the
tiny model's knowledge injection on the builtin privacy data happens once per test session.
The suite under test is always the real ``suites/privacy/test_privacy.py`` of this checkout,
copied into the ``pytester`` directory at test time. Every ``pytester`` directory also gets
the suites' ``conftest.py`` (which adds ``--model``, short for ``--unlearn-model``), as a
run in the suites' folder has it; a test that writes its own conftest replaces it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PRIVACY_SUITE = REPO_ROOT / "suites" / "privacy" / "test_privacy.py"
SUITES_CONFTEST = REPO_ROOT / "suites" / "conftest.py"

# Environment variables of the outer run that must not leak into an inner pytest process.
_LEAKY_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_TESTRUNUID",
)


def ini_text(filterwarnings: str = "error", extra: str = "") -> str:
    """The inner run's ini: the tiny model on the builtin data, like the repo's default.

    An in-process inner run (``pytester.runpytest``) finds pytest_unlearn already imported
    by the outer run; depending on how the package was installed, pytest then warns that it
    cannot rewrite its asserts. That says nothing about the plugin, so it is not an error.
    """
    return (
        "[pytest]\n"
        "unlearn_model = tiny\n"
        "unlearn_data = builtin\n"
        "filterwarnings =\n"
        f"    {filterwarnings}\n"
        "    ignore:Module already imported so cannot be rewritten:"
        "pytest.PytestAssertRewriteWarning\n"
        f"{extra}"
    )


def write_suite(folder: Path, filterwarnings: str = "error", ini_extra: str = "") -> Path:
    """Write the real privacy suite, the suites' conftest and an ini into ``folder``;
    return the suite file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pytest.ini").write_text(ini_text(filterwarnings, ini_extra))
    (folder / "conftest.py").write_text(SUITES_CONFTEST.read_text(encoding="utf-8"))
    suite = folder / "test_privacy.py"
    suite.write_text(PRIVACY_SUITE.read_text(encoding="utf-8"), encoding="utf-8")
    return suite


@pytest.fixture(scope="session")
def unlearn_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model cache for the whole test session."""
    return tmp_path_factory.mktemp("unlearn-cache")


@pytest.fixture
def cache_arg(unlearn_cache_dir: Path) -> str:
    """The explicit --unlearn-cache-dir flag of every inner run."""
    return f"--unlearn-cache-dir={unlearn_cache_dir}"


@pytest.fixture
def suite_writer() -> Any:
    """``suite_writer(folder, filterwarnings="error", ini_extra="")``: write the real privacy
    suite and an ini into a folder (for tests that need another ini than ``suite_dir``)."""
    return write_suite


@pytest.fixture
def data_writer() -> Any:
    """``data_writer(folder, records_per_split=None)``: write a valid data folder."""
    return write_data_folder


@pytest.fixture
def suite_dir(pytester: pytest.Pytester) -> Path:
    """The pytester directory with the real privacy suite and a tiny/builtin ini."""
    write_suite(pytester.path)
    return pytester.path


# Torch's default of one thread per core thrashes when another job shares the 2-core
# machine (a 2-3x slowdown was measured); the inner runs use one thread unless told otherwise.
INNER_THREADS = os.environ.get("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _inner_run_threads(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "pytester" in request.fixturenames:
        monkeypatch.setenv("OMP_NUM_THREADS", INNER_THREADS)


@pytest.fixture(autouse=True)
def _suites_conftest(request: pytest.FixtureRequest) -> None:
    """A pytester directory is a suites' folder: it has the suites' conftest.py."""
    if "pytester" in request.fixturenames:
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        (pytester.path / "conftest.py").write_text(SUITES_CONFTEST.read_text(encoding="utf-8"))


def suites_conftest_with(source: str) -> str:
    """A conftest for a pytester folder that is a suites' folder (``--model`` defined) and
    also holds ``source``: ``pytester.makeconftest`` alone would replace the suites' one."""
    return SUITES_CONFTEST.read_text(encoding="utf-8") + "\n\n" + textwrap.dedent(source)


def run_inner_pytest(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest FOLDER ARGS`` in FOLDER, outside pytester (for session fixtures),
    with ``env`` added to the environment."""
    inherited = {key: value for key, value in os.environ.items() if key not in _LEAKY_ENV}
    inherited.pop("GITHUB_STEP_SUMMARY", None)  # the outer CI's, not the inner run's
    env = {**inherited, "OMP_NUM_THREADS": INNER_THREADS, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-p", "no:cacheprovider", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )


def write_data_folder(
    folder: Path, records_per_split: int | None = None, domain: str = "privacy"
) -> Path:
    """A valid KnowUnDo data folder: the domain's builtin records, optionally truncated."""
    from pytest_unlearn.builtin_data import generate

    folder.mkdir(parents=True, exist_ok=True)
    for split, records in generate(domain).items():
        chosen = records if records_per_split is None else records[:records_per_split]
        (folder / f"{split}.json").write_text(json.dumps(chosen, indent=1))
    return folder


@pytest.fixture(scope="session")
def warm_cache(unlearn_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the privacy suite once with --unlearn-method=none on the shared cache (this is
    where the knowledge injection happens) and return that serial run's JSON report."""
    folder = tmp_path_factory.mktemp("warm-run")
    write_suite(folder)
    report = folder / "warm.json"
    completed = run_inner_pytest(
        folder,
        "-q",
        "--unlearn-method=none",
        f"--unlearn-cache-dir={unlearn_cache_dir}",
        f"--unlearn-json={report}",
    )
    output = completed.stdout + completed.stderr
    # The vanilla model recalls what it must forget, so test_forgets fails: exit code 1.
    assert completed.returncode in (0, 1), output[-5000:]
    assert report.is_file(), output[-5000:]
    return json.loads(report.read_text())


# With any data, the tiny model's injection also teaches it the 194 builtin general-text
# records, so even 3 records per split take 40 epochs over 206 records (about 45 s). Tests
# of the cache, its lock or determinism need a vanilla model, not a knowledgeable one: with
# this --unlearn-config, injection runs 4 epochs (a few seconds) and warns that it is weak.
QUICK_INJECTION = "inject:\n  epochs: 4\n  target_token_accuracy: null\n"


def write_quick_injection(folder: Path) -> Path:
    """Write the QUICK_INJECTION config file into ``folder``; return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "quick-injection.yaml"
    config.write_text(QUICK_INJECTION)
    return config


def _populated_small_cache(
    tmp_path_factory: pytest.TempPathFactory, name: str, *options: str
) -> tuple[Path, Path]:
    """(data folder, cache) after a run of --unlearn-method=none with ``options`` on a fresh
    3-records-per-split privacy data set: the cache holds its one vanilla model."""
    folder = tmp_path_factory.mktemp(name)
    write_suite(folder)
    data = write_data_folder(folder / "smalldata", records_per_split=3)
    cache = folder / "cache"
    completed = run_inner_pytest(
        folder,
        "-q",
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        *options,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode in (0, 1), output[-5000:]
    assert len(list((cache / "vanilla").glob("*/*/weights.safetensors"))) == 1, output[-5000:]
    return data, cache


@pytest.fixture(scope="session")
def quick_data_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(data folder, populated cache, config file): the 3-records-per-split data injected
    with QUICK_INJECTION, for tests that damage a cache and make it rebuild."""
    config = write_quick_injection(tmp_path_factory.mktemp("quick-config"))
    data, cache = _populated_small_cache(
        tmp_path_factory, "quick-run", f"--unlearn-config={config}", "--unlearn-max-new-tokens=4"
    )
    [injection] = list((cache / "vanilla").glob("*/*/injection.json"))
    assert json.loads(injection.read_text())["train_log"]["epochs_run"] == 4
    return data, cache, config


@pytest.fixture(scope="session")
def small_data_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, populated cache) for a 3-records-per-split privacy data set, injected
    in full (about 45 s), for tests that train or score its vanilla model: each copies the
    cache (or adds to it) and runs in a fraction of that."""
    return _populated_small_cache(tmp_path_factory, "small-run")


@pytest.fixture(scope="session")
def local_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random LLaMA model and its tokenizer, saved like a hub snapshot."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pytest_unlearn.data import load_general_text
    from pytest_unlearn.encoding import pad_token_id
    from pytest_unlearn.tiny import tokenizer_texts, train_tiny_tokenizer

    folder = tmp_path_factory.mktemp("local-llama")
    tokenizer = train_tiny_tokenizer(tokenizer_texts(load_general_text()))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad_token_id(tokenizer),
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
