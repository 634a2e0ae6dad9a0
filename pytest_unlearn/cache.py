"""The on-disk cache of built models, their scores, and whole-file hashes.

An entry is a folder named only by the sha256 key of everything that determines its content
(no user string becomes a path). It is built in a private staging folder under ``tmp/``,
given a manifest with the sha256 of every file, and published with one atomic rename, under
a file lock so that concurrent pytest processes or xdist workers build it once. An entry
whose manifest does not match its files is reported and rebuilt.

An intact entry is read without taking its lock (it is published atomically), so a cache
that already holds everything a run needs serves that run even when it is read-only (a
shared CI cache). Building anything in a read-only cache is one clear error that names
what would have to be built.

A build killed mid-way (kill -9, SIGTERM) leaves its staging folder behind; the next run
that uses the cache removes every staging folder whose lock no live process holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .distributed import World, world
from .errors import UnlearnError
from .file_hashes import FileHashes, sha256_of_file

if TYPE_CHECKING:
    from filelock import BaseFileLock

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# "gguf" and "converted": packaged models joined and converted once (packaged_models.py).
KINDS = ("vanilla", "unlearned", "scores", "gguf", "converted")
# How often a process waiting on another's build says that it still waits.
WAIT_REPORT_SECONDS = 60.0
# Staging folders: <key>-<pid>-<hex>, <key>-rank<r>-<hex> (a launched process's scratch
# folder) and retired-<key>-<hex> (an old entry being deleted).
_STAGING = re.compile(r"^(?:retired-)?([0-9a-f]{64})-")


class CacheWarning(UserWarning):
    """A cache entry was found corrupt or incomplete and is being rebuilt."""


def cache_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload``."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ModelCache:
    def __init__(
        self, root: Path, rebuild: bool = False, progress: Callable[[str], None] | None = None
    ) -> None:
        self.root = root
        self.rebuild = rebuild
        self.progress = progress or (lambda message: None)
        # With --unlearn-rebuild, an entry made before this process started is rebuilt once;
        # one that a concurrent worker made during this run is reused.
        self.started = time.time()
        self.file_hashes = FileHashes(root / "file_hashes", self.progress)

    def entry_path(self, kind: str, key: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown cache kind {kind!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise ValueError(f"cache keys are sha256 hex digests, not {key!r}")
        return self.root / kind / key[:2] / key

    def lookup(self, kind: str, key: str) -> Path | None:
        """The entry's folder if it exists and is intact, without building anything."""
        path = self.entry_path(kind, key)
        return path if self._valid(path, key) is None else None

    @property
    def writable(self) -> bool:
        """Whether this process can build entries here (folders created as needed)."""
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        return os.access(existing, os.W_OK | os.X_OK)

    def get_or_build(
        self, kind: str, payload: dict[str, Any], build: Callable[[Path], None], what: str = ""
    ) -> tuple[Path, bool]:
        """Return (entry folder, whether it was built now). ``build`` fills an empty folder;
        ``what`` says what the entry is, for the messages of a read-only cache and of a
        process that waits on another's build."""
        key = cache_key(payload)
        final = self.entry_path(kind, key)
        what = what or f"the {kind} entry {key[:12]}"
        group = world()
        if group is not None:
            return self._get_or_build_together(group, kind, key, final, payload, build, what)
        problem = self._valid(final, key)
        if problem is None and not self._must_rebuild(final):
            return final, False  # published atomically: intact means complete, no lock needed
        with self._locked(key, what):
            problem = self._valid(final, key)
            if problem is None and not self._must_rebuild(final):
                return final, False  # another process built it while this one waited
            self._build(final, key, payload, build)
        if problem not in (None, "missing"):
            # Warn only after the repair: under -W error the warning raises, and the entry
            # must be sound by then.
            warnings.warn(
                CacheWarning(f"cache entry {final} was corrupt ({problem}); it has been rebuilt"),
                stacklevel=2,
            )
        return final, True

    def clean_stale_staging(self) -> list[str]:
        """Remove the staging folders of builds that no live process runs (their lock is
        free): a build killed with kill -9 or SIGTERM leaves one behind. Returns the names
        removed. A cache this process cannot write is left alone."""
        from filelock import FileLock, Timeout

        staging = self.root / "tmp"
        if not staging.is_dir() or not os.access(staging, os.W_OK | os.X_OK):
            return []
        removed: list[str] = []
        for folder in sorted(staging.iterdir()):
            match = _STAGING.match(folder.name)
            if match is None:
                continue
            lock = FileLock(str(self._lock_path(match.group(1))))
            try:
                lock.acquire(timeout=0)
            except Timeout:
                continue  # a live build holds it
            except OSError:
                return removed  # locks/ cannot be written: nothing is built here
            try:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
            finally:
                lock.release()
        if removed:
            self.progress(
                f"removed {len(removed)} staging folder(s) that killed builds left in {staging}"
            )
        return removed

    def _lock_path(self, key: str) -> Path:
        return self.root / "locks" / f"{key}.lock"

    def _locked(self, key: str, what: str) -> _HeldLock:
        """The entry's lock, taken (waiting for another process's build, and saying so);
        one clear error when the cache cannot be written."""
        if not self.writable:
            raise UnlearnError(
                f"the cache {self.root} is read-only, and it lacks {what} (cache key "
                f"{key[:12]}), which this run would have to build. Build it first with the "
                "same command on a writable cache (--unlearn-build-only builds everything "
                "the selected tests need), or pass a writable --unlearn-cache-dir."
            )
        return _HeldLock(self._lock_path(key), what, self.progress)

    def _get_or_build_together(
        self,
        group: World,
        kind: str,
        key: str,
        final: Path,
        payload: dict[str, Any],
        build: Callable[[Path], None],
        what: str,
    ) -> tuple[Path, bool]:
        """``get_or_build`` for processes that train together (``distributed.world()``).

        The main process decides whether the entry must be built. If so, every process runs
        ``build`` (training needs all of them) and the main one publishes its folder under the
        lock; the others build into a scratch folder they delete.
        """
        needed = False
        if group.is_main:
            needed = self._valid(final, key) is not None or self._must_rebuild(final)
        if not group.main_says(needed):
            return final, False
        if group.is_main:
            with self._locked(key, what):
                self._build(final, key, payload, build)
        else:
            scratch = self.root / "tmp" / f"{key}-rank{group.rank}-{uuid.uuid4().hex[:8]}"
            scratch.mkdir(parents=True)
            try:
                build(scratch)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        group.barrier()  # the entry is published before any process reads it
        return final, True

    def _must_rebuild(self, final: Path) -> bool:
        if not self.rebuild:
            return False
        manifest = json.loads((final / MANIFEST).read_text())
        return float(manifest.get("created", 0)) < self.started

    def _build(
        self, final: Path, key: str, payload: dict[str, Any], build: Callable[[Path], None]
    ) -> None:
        staging = self.root / "tmp" / f"{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            build(staging)
            files = {p.name: sha256_of_file(p) for p in sorted(staging.iterdir()) if p.is_file()}
            manifest = {
                "format": FORMAT_VERSION,
                "key": key,
                "payload": payload,
                "files": files,
                "created": time.time(),
            }
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():
                retired = self.root / "tmp" / f"retired-{key}-{uuid.uuid4().hex[:8]}"
                os.replace(final, retired)
                shutil.rmtree(retired, ignore_errors=True)
            os.replace(staging, final)  # the publish: atomic on one filesystem
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _valid(path: Path, key: str) -> str | None:
        """None if the entry is intact, else what is wrong with it."""
        if not path.is_dir():
            return "missing"
        try:
            manifest = json.loads((path / MANIFEST).read_text())
        except (OSError, json.JSONDecodeError) as error:
            return f"unreadable manifest: {error}"
        if manifest.get("key") != key or manifest.get("format") != FORMAT_VERSION:
            return "manifest of another key or format"
        for name, digest in manifest.get("files", {}).items():
            file = path / name
            if not file.is_file():
                return f"{name} is missing"
            if sha256_of_file(file) != digest:
                return f"{name} does not match its sha256 in the manifest"
        return None


class _HeldLock:
    """An entry's file lock for the length of a ``with`` block. A process that finds it
    held says who holds it and what they build (from the holder's note beside the lock),
    then again every ``WAIT_REPORT_SECONDS`` while it waits."""

    def __init__(self, path: Path, what: str, progress: Callable[[str], None]) -> None:
        self.path = path
        self.note = path.with_suffix(".holder.json")
        self.what = what
        self.progress = progress
        self.lock: BaseFileLock | None = None

    def __enter__(self) -> None:
        from filelock import FileLock, Timeout

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.lock = FileLock(str(self.path))
            try:
                self.lock.acquire(timeout=0)
            except Timeout:
                started, reports = time.monotonic(), 0
                while True:
                    waited = time.monotonic() - started
                    self.progress(
                        f"{'still ' if reports else ''}waiting for {self.what}: "
                        f"{self._holder()}" + (f"; waited {waited:.0f} s so far" if reports else "")
                    )
                    reports += 1
                    try:
                        self.lock.acquire(timeout=WAIT_REPORT_SECONDS)
                        break
                    except Timeout:
                        continue
            self.note.write_text(
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "what": self.what,
                        "since": time.time(),
                    }
                )
            )
        except OSError as error:
            raise UnlearnError(
                f"cannot take the cache lock {self.path} to build {self.what} "
                f"({type(error).__name__}: {error.strerror or error}): make "
                f"{self.path.parent} writable, or pass a writable --unlearn-cache-dir"
            ) from None

    def __exit__(self, *exc_info: object) -> None:
        assert self.lock is not None
        try:
            self.note.unlink(missing_ok=True)
        finally:
            self.lock.release()

    def _holder(self) -> str:
        try:
            note = json.loads(self.note.read_text())
            since = time.strftime("%H:%M:%S", time.localtime(float(note["since"])))
            return (
                f"process {note['pid']} on {note['host']} has been building it since "
                f"{since} (lock {self.path})"
            )
        except (OSError, ValueError, KeyError, TypeError):
            return f"another process holds its lock {self.path}"


def library_versions() -> dict[str, str]:
    """Python's and the libraries' versions that results depend on, for cache keys."""
    versions = {"python": platform.python_version(), "pytest_unlearn": __version__}
    for name in ("torch", "transformers", "peft", "tokenizers", "safetensors"):
        versions[name] = version(name)
    return versions


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads((path / MANIFEST).read_text())


def save_tensors(path: Path, tensors: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path))


def load_tensors(path: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as error:
        raise UnlearnError(
            f"{path}: not a readable safetensors file ({error}); delete the "
            "cache entry or rerun with --unlearn-rebuild"
        ) from None
