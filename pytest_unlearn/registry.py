"""The registry of unlearning methods: entry points plus conftest registrations.

Entry points are stored, not loaded: a method's module (and torch) is imported only when a
run uses that method. Besides method names, --unlearn-method takes ``all`` (every
registered method) and ``NAME+controls`` (a method and the ablation controls its class
declares, ``UnlearningMethod.controls``).
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points

from .errors import UnlearnError
from .method import MethodClass, UnlearningMethod
from .parsing import did_you_mean

ENTRY_POINT_GROUP = "pytest_unlearn.methods"
ALL_METHODS = "all"
CONTROLS_SUFFIX = "+controls"

MethodSource = EntryPoint | MethodClass


class MethodRegistry:
    """Maps method names to method classes, loaded on first use."""

    def __init__(self) -> None:
        self._sources: dict[str, MethodSource] = {}
        self._origins: dict[str, str] = {}
        self._loaded: dict[str, MethodClass] = {}

    @classmethod
    def from_entry_points(cls) -> MethodRegistry:
        registry = cls()
        for entry_point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = entry_point.dist.name if entry_point.dist else "unknown distribution"
            registry._add(
                entry_point.name, entry_point, f"entry point {entry_point.value} ({dist})"
            )
        return registry

    def register(self, name: str, method_class: MethodClass) -> None:
        """Register a method class under ``name`` (from a conftest or a test)."""
        if not isinstance(method_class, type):
            raise UnlearnError(
                f"registering method {name!r}: expected a class, got {type(method_class).__name__}"
            )
        origin = f"{method_class.__module__}.{method_class.__qualname__}"
        try:
            origin += f" in {inspect.getsourcefile(method_class)}"
        except TypeError:
            pass  # a class without a source file (built at run time)
        self._add(name, method_class, origin)

    def _add(self, name: str, source: MethodSource, origin: str) -> None:
        if (
            not name
            or name != name.strip()
            or any(sign in name for sign in ",+")
            or name == ALL_METHODS
        ):
            raise UnlearnError(
                f"invalid method name {name!r} from {origin}: names are non-empty, "
                f"without commas, '+' or spaces, and not {ALL_METHODS!r}"
            )
        if name in self._sources:
            raise UnlearnError(
                f"method {name!r} is registered twice: by {self._origins[name]} "
                f"and by {origin}. Rename one of them."
            )
        self._sources[name] = source
        self._origins[name] = origin

    def names(self) -> list[str]:
        return sorted(self._sources)

    def resolve(self, requested: tuple[str, ...]) -> list[str]:
        """Expand 'all' and 'NAME+controls' and check every name; unknown names fail with
        the list of choices. Each method appears once, first come."""
        names: list[str] = []
        for name in requested:
            for each in self._expand(name):
                if each not in self._sources:
                    raise UnlearnError(
                        f"unknown unlearning method {each!r}{self._hint(each, name)}. "
                        f"Available: {', '.join(self.names())}, or {ALL_METHODS!r}, or "
                        f"NAME{CONTROLS_SUFFIX} for a method that declares ablation controls. "
                        f"Methods register through the '{ENTRY_POINT_GROUP}' entry-point group "
                        "or the pytest_unlearn_register_methods hook."
                    )
                if each not in names:
                    names.append(each)
        return names

    def _expand(self, name: str) -> list[str]:
        if name == ALL_METHODS:
            return self.names()
        if name.endswith(CONTROLS_SUFFIX):
            base = name.removesuffix(CONTROLS_SUFFIX)
            if base not in self._sources:
                return [base]  # unknown: resolve() says so
            controls = self.get(base).controls
            if not controls:
                raise UnlearnError(
                    f"--unlearn-method={name}: method {base!r} declares no "
                    "ablation controls (its class's controls); name the methods "
                    "to compare instead"
                )
            return [base, *controls]
        return [name]

    def _hint(self, unknown: str, requested: str) -> str:
        if unknown != requested:
            return f" (in {requested!r}; is the package that provides it installed?)"
        base = unknown.split("+")[0]
        if "+" in unknown and base in self._sources:
            return f" (did you mean '{base}{CONTROLS_SUFFIX}'?)"
        return did_you_mean(unknown, [*self.names(), ALL_METHODS])

    def get(self, name: str) -> MethodClass:
        if name not in self._loaded:
            if name not in self._sources:
                self.resolve((name,))  # raises, with the choices
            source = self._sources[name]
            loaded = source.load() if isinstance(source, EntryPoint) else source
            if not (isinstance(loaded, type) and issubclass(loaded, UnlearningMethod)):
                raise UnlearnError(
                    f"method {name!r} from {self._origins[name]} is not a "
                    "subclass of pytest_unlearn.UnlearningMethod"
                )
            self._loaded[name] = loaded
        return self._loaded[name]

    def origin(self, name: str) -> str:
        return self._origins[name]
