"""Whole-file sha256 hashes of a local model's files (a folder or a .gguf file), part of the
cache keys of its models, remembered between runs while each file is unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import UnlearnError


class FileHashes:
    """The sha256 of whole files (model weights, .gguf files), remembered between runs.

    A file's hash is stored under ``folder`` with what identifies that version of the file:
    its resolved path, size, modification and status-change times (nanoseconds) and inode.
    A rerun on an unchanged file reads the stored hash instead of hashing gigabytes again;
    any write to the file changes its status-change time, which no tool can set back, so a
    file overwritten in place, even with its old size and modification time, is hashed
    again. A cache this process cannot write still gets correct hashes, computed each run.
    """

    def __init__(self, folder: Path, progress: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.progress = progress or (lambda message: None)

    def sha256(self, path: Path) -> str:
        path = path.resolve()
        identity = _identity(path)
        record = self.folder / f"{hashlib.sha256(str(path).encode()).hexdigest()}.json"
        try:
            stored = json.loads(record.read_text())
            if stored.get("identity") == identity and isinstance(stored.get("sha256"), str):
                return str(stored["sha256"])
        except (OSError, ValueError):
            pass
        size = identity["size"]
        if size > 256 << 20:
            self.progress(
                f"hashing {path.name} ({size / 2**30:.1f} GiB) in full for the "
                "cache key; later runs reuse the hash while the file is unchanged"
            )
        digest = sha256_of_file(path)
        if _identity(path) != identity:
            raise UnlearnError(
                f"{path} changed while it was being hashed; wait until it is "
                "completely written, then run again"
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = record.with_name(f".{record.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"identity": identity, "sha256": digest}))
            os.replace(temporary, record)
        except OSError:
            pass  # a read-only cache: the hash is right, just computed again next run
        return digest


def _identity(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {
        "path": str(path),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "ctime_ns": stat.st_ctime_ns,
        "inode": stat.st_ino,
        "device": stat.st_dev,
    }


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
