"""The model cache: keys, atomic publish, corruption detection, rebuild."""

import json

import pytest

from pytest_unlearn.cache import CacheWarning, ModelCache, cache_key, read_manifest


def write_file(text):
    def build(folder):
        (folder / "weights.bin").write_text(text)

    return build


def test_key_is_stable_and_order_independent():
    assert cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    assert cache_key({"a": 1}) != cache_key({"a": 2})


def test_entry_path_is_derived_from_the_hash_only(tmp_path):
    cache = ModelCache(tmp_path)
    key = cache_key({"model": "../../etc/passwd"})
    assert cache.entry_path("vanilla", key) == tmp_path / "vanilla" / key[:2] / key


def test_second_lookup_does_not_build(tmp_path):
    cache = ModelCache(tmp_path)
    calls = []

    def build(folder):
        calls.append(folder)
        (folder / "weights.bin").write_text("w")

    path, built = cache.get_or_build("vanilla", {"k": 1}, build)
    again, built_again = cache.get_or_build("vanilla", {"k": 1}, build)
    assert (built, built_again) == (True, False)
    assert path == again and len(calls) == 1
    assert read_manifest(path)["files"].keys() == {"weights.bin"}


def test_failed_build_leaves_no_entry(tmp_path):
    cache = ModelCache(tmp_path)

    def build(folder):
        (folder / "weights.bin").write_text("half")
        raise KeyboardInterrupt  # killed mid-build

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_build("vanilla", {"k": 1}, build)
    assert cache.lookup("vanilla", cache_key({"k": 1})) is None
    assert not list((tmp_path / "tmp").iterdir())


def test_corrupt_file_is_detected_and_rebuilt(tmp_path):
    cache = ModelCache(tmp_path)
    path, _ = cache.get_or_build("vanilla", {"k": 1}, write_file("good"))
    (path / "weights.bin").write_text("garbage")
    with pytest.warns(CacheWarning, match="does not match its sha256.*has been rebuilt"):
        path, built = cache.get_or_build("vanilla", {"k": 1}, write_file("good"))
    assert built and (path / "weights.bin").read_text() == "good"


def test_missing_manifest_is_detected(tmp_path):
    cache = ModelCache(tmp_path)
    path, _ = cache.get_or_build("vanilla", {"k": 1}, write_file("good"))
    (path / "manifest.json").unlink()
    with pytest.warns(CacheWarning, match="unreadable manifest"):
        _, built = cache.get_or_build("vanilla", {"k": 1}, write_file("good"))
    assert built


def test_rebuild_flag_rebuilds_entries_made_before_the_run(tmp_path):
    path, _ = ModelCache(tmp_path).get_or_build("vanilla", {"k": 1}, write_file("old"))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["created"] = 0.0
    (path / "manifest.json").write_text(json.dumps(manifest))
    rebuilding = ModelCache(tmp_path, rebuild=True)
    path, built = rebuilding.get_or_build("vanilla", {"k": 1}, write_file("new"))
    assert built and (path / "weights.bin").read_text() == "new"
    # Made during this run: reused, not rebuilt again.
    _, built_again = rebuilding.get_or_build("vanilla", {"k": 1}, write_file("newer"))
    assert not built_again


# --- builds killed mid-way, and a process that waits on another's build --------------------

CHILD_BUILD = """
import sys, time
from pathlib import Path
from pytest_unlearn.cache import ModelCache

def build(folder):
    (folder / "weights.bin").write_text("half")
    Path(sys.argv[2]).write_text("building")
    time.sleep(600)

ModelCache(Path(sys.argv[1])).get_or_build("vanilla", {"k": 1}, build, "the vanilla model")
"""


def start_child_build(tmp_path):
    """A child process that stays inside a build until killed; returns it once the build's
    staging folder exists."""
    import subprocess
    import sys
    import time

    marker = tmp_path / "building"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_BUILD, str(tmp_path / "cache"), str(marker)]
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None and time.monotonic() < deadline, "the child never built"
        time.sleep(0.05)
    return child


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGTERM"])
def test_staging_folders_of_killed_builds_are_removed_at_start(tmp_path, signal_name):
    import signal

    child = start_child_build(tmp_path)
    child.send_signal(getattr(signal, signal_name))
    child.wait(timeout=60)
    staging = tmp_path / "cache" / "tmp"
    [left] = list(staging.iterdir())  # the killed build left its staging folder
    removed = ModelCache(tmp_path / "cache").clean_stale_staging()
    assert removed == [left.name]
    assert not list(staging.iterdir())


def test_the_staging_folder_of_a_live_build_is_kept(tmp_path):
    child = start_child_build(tmp_path)
    try:
        assert ModelCache(tmp_path / "cache").clean_stale_staging() == []
        assert len(list((tmp_path / "cache" / "tmp").iterdir())) == 1
    finally:
        child.kill()
        child.wait(timeout=60)


def test_a_waiting_process_says_who_builds_what(tmp_path, monkeypatch):
    import os

    import pytest_unlearn.cache as cache_module

    monkeypatch.setattr(cache_module, "WAIT_REPORT_SECONDS", 0.2)
    child = start_child_build(tmp_path)
    messages = []

    def progress(message):
        messages.append(message)
        if len(messages) == 2:
            child.kill()  # the holder dies; its lock is free, and this process builds

    path, built = ModelCache(tmp_path / "cache", progress=progress).get_or_build(
        "vanilla", {"k": 1}, write_file("good"), "the vanilla model"
    )
    child.wait(timeout=60)
    assert built and (path / "weights.bin").read_text() == "good"
    assert messages[0].startswith(
        f"waiting for the vanilla model: process {child.pid} on "
        f"{os.uname().nodename} has been building it since "
    )
    assert messages[1].startswith("still waiting for the vanilla model: ")
