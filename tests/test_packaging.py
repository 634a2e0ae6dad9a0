"""The wheel a package index would get (issue 21, item 4): it holds the plugin, the methods,
the suites and their YAML files and the report schema, with the metadata an index shows;
installed into a fresh virtual environment (not editable, outside the repo), a suite runs
from an empty folder with ``pytest --pyargs pytest_unlearn_suites.privacy``."""

from __future__ import annotations

import email
import json
import os
import subprocess
import sys
import zipfile
from importlib.metadata import distributions, version
from pathlib import Path
from typing import Any

import pytest

from conftest import INNER_THREADS, REPO_ROOT


def _run(
    command: list[str], cwd: Path, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env.pop("VIRTUAL_ENV", None)
    env["OMP_NUM_THREADS"] = INNER_THREADS
    completed = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert completed.returncode == 0, (
            f"{command} exited {completed.returncode}:\n{completed.stdout[-3000:]}"
            f"\n{completed.stderr[-3000:]}"
        )
    return completed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dist")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(folder),
            str(REPO_ROOT),
        ],
        cwd=folder,
    )
    [built] = folder.glob("pytest_unlearn-*.whl")
    return built


def test_the_wheel_holds_the_suites_their_yaml_and_the_schema(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "pytest_unlearn/plugin.py",
        "pytest_unlearn/report.schema.json",
        "pytest_unlearn_methods/memflex.py",
        "pytest_unlearn_suites/__init__.py",
        "pytest_unlearn_suites/__main__.py",
        "pytest_unlearn_suites/conftest.py",
        "pytest_unlearn_suites/privacy/test_privacy.py",
        "pytest_unlearn_suites/privacy/test_leaks.py",
        "pytest_unlearn_suites/privacy/test_attack.py",
        "pytest_unlearn_suites/privacy/test_membership.py",
        "pytest_unlearn_suites/privacy/test_quantized.py",
        "pytest_unlearn_suites/copyright/test_copyright.py",
        "pytest_unlearn_suites/general/test_general.py",
        "pytest_unlearn_suites/general/thresholds.yaml",
        "pytest_unlearn_suites/gate.yaml",
        "pytest_unlearn_suites/release-gate.yaml",
    ):
        assert expected in names, expected
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "docs/"))]
    assert not [name for name in names if name.split("/")[0] in ("methods", "suites")]
    [license_file] = [name for name in names if name.endswith("licenses/LICENSE")]
    assert "MIT License" in zipfile.ZipFile(wheel).read(license_file).decode()


def test_the_wheel_has_the_metadata_an_index_shows(wheel: Path) -> None:
    [metadata_name] = [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("/METADATA")]
    metadata = email.message_from_bytes(zipfile.ZipFile(wheel).read(metadata_name))
    assert metadata["Name"] == "pytest-unlearn"
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Author"] or metadata["Author-email"]
    urls = metadata.get_all("Project-URL") or []
    assert any("github.com/zjunlp/KnowUnDo" in url for url in urls), urls
    classifiers = metadata.get_all("Classifier") or []
    assert "Framework :: Pytest" in classifiers
    assert {"Programming Language :: Python :: 3.10", "Programming Language :: Python :: 3.11"} <= (
        set(classifiers)
    )
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata.get_payload().lstrip().startswith("# pytest-unlearn")  # README


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed (and its dependencies, torch
    first: the pinned CPU wheel)."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent)
    python = venv / "bin" / "python"
    # The versions of this environment: the same torch CPU wheel, and cache keys (which hold
    # the libraries' versions) that match the shared cache's.
    constraints = venv.parent / "constraints.txt"
    constraints.write_text("\n".join(_pinned()) + "\n")
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints)]
        + [f"torch=={version('torch')}", str(wheel)],
        cwd=venv.parent,
    )
    return python


def _pinned() -> list[str]:
    """name==version of every distribution installed here but this one."""
    return sorted(
        {
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in distributions()
            if dist.metadata["Name"] and dist.metadata["Name"].lower() != "pytest-unlearn"
        }
    )


def test_a_suite_runs_from_an_empty_folder_after_pip_install(
    fresh_venv: Path, warm_cache: dict[str, Any], unlearn_cache_dir: Path, tmp_path: Path
) -> None:
    """From the shared cache (the warm run's vanilla model): the installed suite tests it."""
    empty = tmp_path / "empty"
    empty.mkdir()
    where = _run(
        [str(fresh_venv), "-c", "import pytest_unlearn; print(pytest_unlearn.__file__)"], empty
    )
    assert REPO_ROOT not in Path(where.stdout.strip()).parents  # the installed copy
    folder = Path(_run([str(fresh_venv), "-m", "pytest_unlearn_suites"], empty).stdout.strip())
    assert (folder / "release-gate.yaml").is_file() and (folder / "privacy").is_dir()
    report = tmp_path / "report.json"
    completed = _run(
        [
            str(fresh_venv),
            "-m",
            "pytest",
            "--pyargs",
            "pytest_unlearn_suites.privacy.test_privacy",
            "-p",
            "no:cacheprovider",
            "--unlearn-method=none",
            f"--unlearn-cache-dir={unlearn_cache_dir}",
            f"--unlearn-json={report}",
            "-q",
        ],
        empty,
        check=False,
    )
    output = completed.stdout + completed.stderr
    # The vanilla model still recalls what it must forget: test_forgets fails (exit 1).
    assert completed.returncode == 1, output[-3000:]
    assert "unlearning summary" in output
    rows = json.loads(report.read_text())["rows"]
    assert [(row["method"], row["unlearn_items"], row["retention_items"]) for row in rows] == [
        ("none", 28, 28)
    ]
    assert rows[0]["model_cache_key"] == warm_cache["rows"][0]["model_cache_key"]
    assert list(empty.iterdir()) == []  # nothing written into the folder it ran from
