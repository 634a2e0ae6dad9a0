"""The interface every unlearning method implements.

A method is a class with a config dataclass. The harness builds the config (the paper's
defaults, a model-specific preset, then the user's YAML overrides), instantiates the method
with it, and calls ``unlearn`` once on a freshly loaded vanilla model.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .errors import UnlearnError
from .parsing import checked_value

ConfigT = TypeVar("ConfigT")

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .data import Record


@dataclass
class UnlearnContext:
    """What a method receives.

    ``model`` is the vanilla model (knowledge injected), in training precision on
    ``device``. Exactly the parameters named in ``trainable`` have ``requires_grad=True``:
    the LoRA tensors of the injection adapter for a LoRA-injected model, every weight for a
    fully trained one. A method may train all of them or a subset, and must not touch any
    other parameter. The harness saves the ``trainable`` tensors after ``unlearn`` returns.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    forget: list[Record]
    retain: list[Record]
    general: list[Record]
    seed: int
    device: torch.device
    trainable: list[str]
    model_family: str
    domain: str
    max_length: int = 256
    progress: Callable[[str], None] = print
    # The val parts, which the item tests score. A method must not train on them; MemFlex
    # reads them for localization only, as the reference implementation does.
    forget_val: list[Record] = field(default_factory=list)
    retain_val: list[Record] = field(default_factory=list)
    # Training curves (--unlearn-curve-every): a method that runs its own loop instead of
    # objectives.train_and_report calls this with 0 before its first optimizer step and
    # with each step's number after it.
    after_step: Callable[[int], None] | None = None


@dataclass
class MethodResult:
    """What a method returns: the unlearned model, a log of what it did, and artifacts.

    ``log`` and each artifact are JSON-able; the harness writes the log to
    ``method_log.json`` and each artifact to ``<name>.json`` in the cache entry.
    """

    model: PreTrainedModel
    log: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)


class UnlearningMethod(Generic[ConfigT]):
    """Base class of a method: set ``name`` and ``config_class``, implement ``unlearn``.

    Generic over its config dataclass: ``class MyMethod(UnlearningMethod[MyConfig])`` gets
    ``self.config`` typed as ``MyConfig``. ``presets`` maps a model family ('tiny',
    'llama2', 'qwen1.5', ...) to field overrides that the paper's 7B defaults need on other
    models (learning rates do not transfer).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[Any]] = object
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # The models a method unlearned are cached under a key that includes its code: the
    # source of the modules of its class and base classes, and the version of the installed
    # distribution that provides it (``code_fingerprint``), so editing a method rebuilds its
    # models. A string here replaces the source in the key: you then decide when its models
    # are rebuilt, by changing it (for a method whose behaviour lives in other modules, or
    # whose source cannot be read).
    version: ClassVar[str | None] = None
    # False only for a method that leaves the model as it is (``none``): its "unlearned"
    # model is the vanilla model, and a gate leaves its row out unless it names it.
    unlearns: ClassVar[bool] = True
    # The methods that are this method's ablation controls (its training with one
    # ingredient changed), and the ingredient they test: ``--unlearn-method=NAME+controls``
    # runs them beside it, and the summary says whether it beats each one beyond the seed
    # spread (MemFlex: its three region controls, testing its "localization").
    controls: ClassVar[tuple[str, ...]] = ()
    controls_test: ClassVar[str] = ""
    # True when training with the model sharded across processes (FSDP) is safe: every
    # call of the method's loss runs the model the same number of times whatever the batch
    # holds (each forward pass communicates with every process), and whatever it does to
    # the model's tensors while it trains works on sharded ones (``FrozenReference`` does).
    fsdp_compatible: ClassVar[bool] = False

    def __init__(self, config: ConfigT) -> None:
        # A config with a ``check(where)`` (every TrainSettings) is checked before any work.
        check = getattr(config, "check", None)
        if callable(check):
            check(f"method {self.name!r} config")
        self.config = config

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        raise NotImplementedError


# A method class of any config type, as the registry and the harness hold them.
MethodClass = type[UnlearningMethod[Any]]


def code_fingerprint(method_class: MethodClass) -> dict[str, Any]:
    """What identifies a method's code, for the cache keys of the models it unlearns.

    Without an explicit ``version``: the sha256 of the source file of each class in its
    MRO up to `UnlearningMethod` (a subclass of MemFlex changes when memflex.py does), and
    the name and version of the installed distribution of each of those modules, if any.
    Code the method calls in other modules is not covered: the package version covers the
    harness itself, and a method whose behaviour lives elsewhere sets ``version``.
    """
    return _code_fingerprint(method_class)  # type: ignore[arg-type]  # classes hash


@functools.cache
def _code_fingerprint(method_class: Any) -> dict[str, Any]:
    if method_class.version is not None:
        return {"version": str(method_class.version)}
    sources: dict[str, str] = {}
    distributions: dict[str, str] = {}
    for cls in method_class.__mro__:
        if (
            not (isinstance(cls, type) and issubclass(cls, UnlearningMethod))
            or cls is UnlearningMethod
            or cls.__module__ in sources
        ):
            continue
        try:
            path = inspect.getsourcefile(cls)
            if path is None:
                raise TypeError("no source file")
            with open(path, "rb") as source:
                sources[cls.__module__] = hashlib.sha256(source.read()).hexdigest()
        except (OSError, TypeError) as error:
            raise UnlearnError(
                f"method {method_class.name!r}: the source of {cls.__module__}."
                f"{cls.__qualname__} cannot be read ({error}), and the cache key of the "
                "models it unlearns includes its code. Define it in a file, or set a "
                "version class attribute that you change whenever its code changes."
            ) from None
        top = cls.__module__.split(".")[0]
        for name in _distributions_of_packages().get(top, ()):
            distributions[name] = metadata.version(name)
    return {"sources": sources, "distributions": distributions}


@functools.lru_cache(maxsize=1)
def _distributions_of_packages() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def make_config(
    method_class: MethodClass,
    model_family: str,
    overrides: dict[str, Any] | None = None,
    source: str = "config",
) -> Any:
    """Build a method's config: dataclass defaults, then the family preset, then overrides.

    Unknown keys, values of the wrong type and values out of range (the config's
    ``check``) are errors that name ``source``, the method and the key. A float field takes
    a number written as a string (YAML 1.1, which PyYAML reads, takes ``5e-5`` for one).
    """
    config_class = method_class.config_class
    if not dataclasses.is_dataclass(config_class):
        raise UnlearnError(f"method {method_class.name!r}: config_class must be a dataclass")
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    values: dict[str, Any] = dict(method_class.presets.get(model_family, {}))
    defaults = config_class()
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise UnlearnError(
                f"{source}: method {method_class.name!r} has no config key {key!r}; its keys "
                f"are: {', '.join(fields)}"
            )
        values[key] = checked_value(
            getattr(defaults, key), value, f"{source}: {method_class.name}.{key}"
        )
    config = config_class(**values)
    check = getattr(config, "check", None)
    if callable(check):
        check(f"{source}: method {method_class.name!r}")
    return config
