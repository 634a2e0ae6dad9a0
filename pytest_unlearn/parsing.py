"""Small parsing helpers shared by the options, the config file and the gate."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UnlearnError

# An owner/name hub id (model or data set).
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def float_literal(text: str) -> bool:
    """Whether ``text`` is a plain decimal number such as ``5e-5``, ``1.5`` or ``-2``
    (YAML 1.1, which PyYAML reads, takes ``5e-5`` for a string)."""
    return _FLOAT.fullmatch(text) is not None


def checked_value(default: Any, value: Any, where: str) -> Any:
    """``value`` for a config field whose default is ``default``, or an error naming
    ``where`` if its type differs; a float field takes an int, or a number written as a
    string (``float_literal``)."""
    if isinstance(default, float) and isinstance(value, str) and float_literal(value):
        value = float(value)
    if not _same_kind(default, value):
        raise UnlearnError(
            f"{where} = {value!r} has type {type(value).__name__}, expected "
            f"{type(default).__name__} (like the default {default!r})"
        )
    return float(value) if isinstance(default, float) else value


def did_you_mean(name: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or nothing."""
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if default is None:
        return True
    return isinstance(value, type(default))


@dataclass(frozen=True)
class Origin:
    """Where the value of one option came from, so that an error message names it as the user
    wrote it: on the command line, as an ini key (and in which file), with ``-o``, as a
    default, or as a keyword of ``options.settings_for_script``."""

    flag: str
    key: str
    # "command line", "ini", "-o", "default", "script" or "evaluate" (a keyword of
    # ``pytest_unlearn.evaluate``, named without the unlearn_ prefix)
    source: str = "command line"
    inipath: Path | None = None

    @property
    def place(self) -> str:
        """The option without its value: '--unlearn-seed', 'ini key unlearn_seed in FILE'."""
        if self.source == "ini":
            return f"ini key {self.key} in {self.inipath or 'the ini file'}"
        if self.source == "-o":
            return f"-o {self.key}"
        if self.source == "script":
            return f"setting {self.key}"
        if self.source == "evaluate":
            return f"evaluate({self.key.removeprefix('unlearn_')}=...)"
        if self.source == "default":
            return f"{self.flag} (the default)"
        return self.flag

    def label(self, value: object, quote: bool = True) -> str:
        """The option with its value: "--unlearn-seed='abc'", "unlearn_seed = 'abc' (ini key
        in FILE)"."""
        shown = repr(value) if quote else str(value)
        if self.source == "ini":
            return f"{self.key} = {shown} (ini key in {self.inipath or 'the ini file'})"
        if self.source == "-o":
            return f"-o {self.key}={shown}"
        if self.source == "script":
            return f"{self.key}={shown}"
        if self.source == "evaluate":
            return f"evaluate({self.key.removeprefix('unlearn_')}={shown})"
        if self.source == "default":
            return f"{self.flag}={shown} (the default)"
        return f"{self.flag}={shown}"


# --- files and folders the options name ----------------------------------------------


def existing_file(origin: Origin, text: str) -> Path | None:
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise UnlearnError(f"{origin.label(text)}: no such file (looked in {Path.cwd()})")
    return path


def output_file(origin: Origin, text: str) -> Path | None:
    """A file the run writes at its end (creating missing folders): check now that it can."""
    if not text:
        return None
    path = Path(text).expanduser()
    fix = "choose a file in a folder you can write to"
    if path.is_dir():
        raise UnlearnError(
            f"{origin.label(text)} is a folder, not a file; name the file to "
            f"write, e.g. {path / 'unlearn-report.json'}"
        )
    if path.exists() and not os.access(path, os.W_OK):
        raise UnlearnError(f"{origin.label(text)}: the file is not writable; {fix}")
    check_writable_folder(origin.label(text), path.absolute().parent, fix)
    return path


def check_writable_folder(label: str, folder: Path, fix: str) -> None:
    """``folder`` is a folder this process can write in, or can be created as one."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        blocked = "" if existing == folder else f", so the folder {folder} cannot be created"
        raise UnlearnError(f"{label}: {existing} is a file, not a folder{blocked}; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnlearnError(f"{label}: no permission to write in the folder {existing}; {fix}")


def cache_dir(origin: Origin, text: str, rootdir: Path) -> Path:
    if not text:
        # Not checked: every pytest run loads the plugin, and one that tests no model must
        # not fail on an unwritable home folder.
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "pytest-unlearn"
    path = Path(text).expanduser()
    # An ini value is relative to the project, like pytest's own cache_dir.
    if not path.is_absolute() and origin.source in ("ini", "-o"):
        path = rootdir / path
    path = path.resolve()
    if path.is_dir() and os.access(path, os.R_OK | os.X_OK):
        # A read-only cache (a shared CI cache) serves what it holds; a run that would have
        # to build something there says so when it gets to it.
        return path
    check_writable_folder(
        origin.label(text), path, "remove what is in the way or choose another --unlearn-cache-dir"
    )
    return path
