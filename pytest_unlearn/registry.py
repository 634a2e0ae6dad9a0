"""The registry of unlearning methods: entry points plus conftest registrations.

Entry points are stored, not loaded: a method's module (and torch) is imported only when a
run uses that method.
"""

from __future__ import annotations

import difflib
import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import Union

from .errors import UnlearnError
from .method import UnlearningMethod

ENTRY_POINT_GROUP = "pytest_unlearn.methods"
ALL_METHODS = "all"
# Names that stand for a fixed list of methods in --unlearn-method.
METHOD_GROUPS: dict[str, tuple[str, ...]] = {
    "memflex+controls": ("memflex", "memflex_all_tensors", "memflex_random_region",
                         "memflex_inverse_region"),
}
RESERVED_NAMES = (ALL_METHODS, *METHOD_GROUPS)

MethodSource = Union[EntryPoint, type[UnlearningMethod]]


class MethodRegistry:
    """Maps method names to method classes, loaded on first use."""

    def __init__(self) -> None:
        self._sources: dict[str, MethodSource] = {}
        self._origins: dict[str, str] = {}
        self._loaded: dict[str, type[UnlearningMethod]] = {}

    @classmethod
    def from_entry_points(cls) -> MethodRegistry:
        registry = cls()
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = entry_point.dist.name if entry_point.dist else "unknown distribution"
            registry._add(entry_point.name, entry_point, f"entry point {entry_point.value} ({dist})")
        return registry

    def register(self, name: str, method_class: type[UnlearningMethod]) -> None:
        """Register a method class under ``name`` (from a conftest or a test)."""
        if not isinstance(method_class, type):
            raise UnlearnError(f"registering method {name!r}: expected a class, got "
                               f"{type(method_class).__name__}")
        origin = f"{method_class.__module__}.{method_class.__qualname__}"
        try:
            origin += f" in {inspect.getsourcefile(method_class)}"
        except TypeError:
            pass  # a class without a source file (built at run time)
        self._add(name, method_class, origin)

    def _add(self, name: str, source: MethodSource, origin: str) -> None:
        if not name or name != name.strip() or "," in name or name in RESERVED_NAMES:
            raise UnlearnError(f"invalid method name {name!r} from {origin}: names are non-empty, "
                               "without commas or spaces, and not one of "
                               f"{', '.join(map(repr, RESERVED_NAMES))}")
        if name in self._sources:
            raise UnlearnError(f"method {name!r} is registered twice: by {self._origins[name]} "
                               f"and by {origin}. Rename one of them.")
        self._sources[name] = source
        self._origins[name] = origin

    def names(self) -> list[str]:
        return sorted(self._sources)

    def resolve(self, requested: tuple[str, ...]) -> list[str]:
        """Expand 'all' and the method groups (``METHOD_GROUPS``) and check every name;
        unknown names fail with the list of choices. Each method appears once, first come."""
        names: list[str] = []
        for name in requested:
            for each in self._expand(name):
                if each not in self._sources:
                    raise UnlearnError(
                        f"unknown unlearning method {each!r}{self._hint(each, name)}. "
                        f"Available: {', '.join(self.names())}, or "
                        f"{', '.join(map(repr, RESERVED_NAMES))}. Methods register through the "
                        f"'{ENTRY_POINT_GROUP}' entry-point group or the "
                        "pytest_unlearn_register_methods hook.")
                if each not in names:
                    names.append(each)
        return names

    def _expand(self, name: str) -> list[str]:
        if name == ALL_METHODS:
            return self.names()
        return list(METHOD_GROUPS.get(name, (name,)))

    def _hint(self, unknown: str, requested: str) -> str:
        if unknown != requested:
            return f" (in {requested!r}; is the package that provides it installed?)"
        close = difflib.get_close_matches(unknown, [*self.names(), *RESERVED_NAMES], n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def get(self, name: str) -> type[UnlearningMethod]:
        if name not in self._loaded:
            self.resolve((name,))
            source = self._sources[name]
            loaded = source.load() if isinstance(source, EntryPoint) else source
            if not (isinstance(loaded, type) and issubclass(loaded, UnlearningMethod)):
                raise UnlearnError(f"method {name!r} from {self._origins[name]} is not a "
                                   "subclass of pytest_unlearn.UnlearningMethod")
            self._loaded[name] = loaded
        return self._loaded[name]

    def origin(self, name: str) -> str:
        return self._origins[name]
