"""A read-only cache (a shared CI cache, mounted read-only) serves a run that needs nothing
new from it; whatever it lacks is one clear error that names what would have to be built.

The tests run the inner pytest in a mount namespace of its own where the cache (or its
``locks/`` folder alone) is bind-mounted read-only: root, who runs CI here, may write into
any folder whatever its permission bits, but not into a read-only mount.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import INNER_THREADS, write_suite

_LEAKY_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_CURRENT_TEST",
    "PYTEST_XDIST_TESTRUNUID",
)


def _can_mount_read_only() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        [
            "unshare",
            "--mount",
            "sh",
            "-c",
            "mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp /tmp",
        ],
        capture_output=True,
    )
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(
    not _can_mount_read_only(),
    reason="needs `unshare --mount` and bind mounts (root or user namespaces) to make a "
    "folder read-only for the inner run",
)


def run_pytest(
    folder: Path, read_only: Path | None, *args: str
) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in ``folder``, with ``read_only`` mounted read-only for it."""
    env = {key: value for key, value in os.environ.items() if key not in _LEAKY_ENV}
    env["OMP_NUM_THREADS"] = INNER_THREADS
    command = [sys.executable, "-m", "pytest", str(folder), "-p", "no:cacheprovider", *args]
    if read_only is not None:
        mount = (
            f'mount --bind "{read_only}" "{read_only}" && '
            f'mount -o remount,ro,bind "{read_only}" "{read_only}" && exec "$@"'
        )
        command = ["unshare", "--mount", "sh", "-c", mount, "sh", *command]
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=1800
    )


@pytest.fixture
def built_cache(
    tmp_path: Path, quick_data_cache: tuple[Path, Path, Path]
) -> tuple[Path, Path, list[str]]:
    """(suite folder, a copy of a fully built cache, the options of the run it serves)."""
    data, populated, config = quick_data_cache
    cache = tmp_path / "shared-cache"
    shutil.copytree(populated, cache)
    folder = tmp_path / "run"
    write_suite(folder)
    options = [
        "-q",
        "--unlearn-method=none",
        f"--unlearn-data={data}",
        f"--unlearn-cache-dir={cache}",
        f"--unlearn-config={config}",
        "--unlearn-max-new-tokens=4",
        "-W",
        "ignore::pytest_unlearn.errors.InjectionWarning",
    ]
    return folder, cache, options


def items_of(report: Path) -> list[dict[str, Any]]:
    return json.loads(report.read_text())["items"]


def test_a_read_only_cache_that_holds_everything_serves_the_run(
    built_cache: tuple[Path, Path, list[str]],
) -> None:
    folder, cache, options = built_cache
    writable = run_pytest(folder, None, *options, f"--unlearn-json={folder / 'rw.json'}")
    assert writable.returncode in (0, 1), writable.stdout[-3000:]
    read_only = run_pytest(folder, cache, *options, f"--unlearn-json={folder / 'ro.json'}")
    output = read_only.stdout + read_only.stderr
    assert read_only.returncode in (0, 1), output[-3000:]
    assert "error" not in output.splitlines()[-1], output[-3000:]
    assert items_of(folder / "ro.json") == items_of(folder / "rw.json")


def test_a_read_only_cache_that_lacks_an_entry_says_what_it_would_build(
    built_cache: tuple[Path, Path, list[str]],
) -> None:
    folder, cache, options = built_cache
    shutil.rmtree(cache / "scores")
    result = run_pytest(folder, cache, *options)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert "6 errors" in output.splitlines()[-1], output[-3000:]
    assert (
        f"the cache {cache} is read-only, and it lacks the privacy item scores of model " in output
    )
    assert "--unlearn-build-only" in output
    assert "PermissionError" not in output and "Traceback" not in output


def test_read_only_locks_alone_serve_a_built_cache_and_name_the_lock_otherwise(
    built_cache: tuple[Path, Path, list[str]],
) -> None:
    folder, cache, options = built_cache
    served = run_pytest(folder, cache / "locks", *options)
    assert served.returncode in (0, 1), (served.stdout + served.stderr)[-3000:]
    assert "error" not in served.stdout.splitlines()[-1], served.stdout[-3000:]
    shutil.rmtree(cache / "scores")
    refused = run_pytest(folder, cache / "locks", *options)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output[-3000:]
    assert f"cannot take the cache lock {cache / 'locks'}" in output
    assert f"make {cache / 'locks'} writable, or pass a writable --unlearn-cache-dir" in output
    assert "Traceback" not in output
