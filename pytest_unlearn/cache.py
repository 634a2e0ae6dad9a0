"""The on-disk cache of built models.

An entry is a folder named only by the sha256 key of everything that determines its content
(no user string becomes a path). It is built in a private temporary folder, given a manifest
with the sha256 of every file, and published with one atomic rename, under a file lock so
that concurrent pytest processes or xdist workers build it once. An entry whose manifest
does not match its files is reported and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import UnlearnError

if TYPE_CHECKING:
    from .distributed import World

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class CacheWarning(UserWarning):
    """A cache entry was found corrupt or incomplete and is being rebuilt."""


def cache_key(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``payload``."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ModelCache:
    def __init__(self, root: Path, rebuild: bool = False) -> None:
        self.root = root
        self.rebuild = rebuild
        # With --unlearn-rebuild, an entry made before this process started is rebuilt once;
        # one that a concurrent worker made during this run is reused.
        self.started = time.time()

    def entry_path(self, kind: str, key: str) -> Path:
        if kind not in ("vanilla", "unlearned", "scores"):
            raise ValueError(f"unknown cache kind {kind!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", key):
            raise ValueError(f"cache keys are sha256 hex digests, not {key!r}")
        return self.root / kind / key[:2] / key

    def lookup(self, kind: str, key: str) -> Path | None:
        """The entry's folder if it exists and is intact, without building anything."""
        path = self.entry_path(kind, key)
        return path if self._valid(path, key) is None else None

    def get_or_build(self, kind: str, payload: dict[str, Any],
                     build: Callable[[Path], None]) -> tuple[Path, bool]:
        """Return (entry folder, whether it was built now). ``build`` fills an empty folder."""
        from filelock import FileLock

        from .distributed import world

        key = cache_key(payload)
        final = self.entry_path(kind, key)
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        group = world()
        if group is not None:
            return self._get_or_build_together(group, kind, key, final, payload, build)
        with FileLock(str(self.root / "locks" / f"{key}.lock")):
            problem = self._valid(final, key)
            if problem is None and not self._must_rebuild(final):
                return final, False
            self._build(final, key, payload, build)
            if problem not in (None, "missing"):
                # Warn only after the repair: under -W error the warning raises, and the
                # entry must be sound by then.
                warnings.warn(CacheWarning(f"cache entry {final} was corrupt ({problem}); "
                                           "it has been rebuilt"), stacklevel=2)
            return final, True

    def _get_or_build_together(self, group: World, kind: str, key: str, final: Path,
                               payload: dict[str, Any], build: Callable[[Path], None],
                               ) -> tuple[Path, bool]:
        """``get_or_build`` for processes that train together (``distributed.world()``).

        The main process decides whether the entry must be built. If so, every process runs
        ``build`` (training needs all of them) and the main one publishes its folder under the
        lock; the others build into a scratch folder they delete.
        """
        from filelock import FileLock

        needed = False
        if group.is_main:
            needed = self._valid(final, key) is not None or self._must_rebuild(final)
        if not group.main_says(needed):
            return final, False
        if group.is_main:
            with FileLock(str(self.root / "locks" / f"{key}.lock")):
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

    def _build(self, final: Path, key: str, payload: dict[str, Any],
               build: Callable[[Path], None]) -> None:
        staging = self.root / "tmp" / f"{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            build(staging)
            files = {p.name: _sha256(p) for p in sorted(staging.iterdir()) if p.is_file()}
            manifest = {"format": FORMAT_VERSION, "key": key, "payload": payload,
                        "files": files, "created": time.time()}
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
            if _sha256(file) != digest:
                return f"{name} does not match its sha256 in the manifest"
        return None


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
        raise UnlearnError(f"{path}: not a readable safetensors file ({error}); delete the "
                           "cache entry or rerun with --unlearn-rebuild") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
