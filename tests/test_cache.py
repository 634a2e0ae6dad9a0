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
