"""The --unlearn-config file: one YAML section per method that overrides fields of its
config, and an ``inject`` section for knowledge injection::

    gradient_ascent:
      lr: 1.0e-4
    inject:
      epochs: 20

The file is read once; a section that names no registered method, is not a mapping, or
holds an unknown key or a value of the wrong type is an error that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import read_utf8
from .errors import UnlearnError
from .injection import INJECT_SECTION, InjectionConfig
from .method import MethodClass, make_config
from .model_presets import injection_preset


class ConfigFile:
    """The sections of --unlearn-config (none without the option)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._content: dict[str, Any] | None = None

    @property
    def source(self) -> str:
        """How messages name the file."""
        return str(self.path) if self.path is not None else "config"

    def sections(self) -> dict[str, Any]:
        """The file's mapping of section names to their content, read once and checked to
        be a mapping (an empty file has no section; a list is an error)."""
        if self._content is None:
            self._content = self._read()
        return self._content

    def check(self, registered: list[str]) -> None:
        """Every section names a registered method (or ``inject``) and is a mapping."""
        if INJECT_SECTION in registered and INJECT_SECTION in self.sections():
            raise UnlearnError(
                f"{self.path}: section {INJECT_SECTION!r} is reserved for "
                "knowledge injection, but a registered method has that name "
                "too; rename the method"
            )
        for name, section in self.sections().items():
            if name not in registered and name != INJECT_SECTION:
                raise UnlearnError(
                    f"{self.path}: section {name!r} names no registered method "
                    f"nor {INJECT_SECTION!r}; methods are: {', '.join(registered)}"
                )
            if not isinstance(section, dict):
                raise UnlearnError(
                    f"{self.path}: section {name!r} must be a mapping of config "
                    f"keys to values, got {type(section).__name__}"
                )

    def method_config(self, method_class: MethodClass, name: str, family: str) -> Any:
        """The config in force: defaults, the model family's preset, then the section."""
        return make_config(method_class, family, self.sections().get(name, {}), self.source)

    def injection(self, family: str = "other") -> InjectionConfig:
        """Paper Table 7 (LoRA) and the tiny model's settings, then the model family's
        preset (``model_presets.py``), then ``inject``."""
        config = InjectionConfig()
        preset = injection_preset(family)
        if preset:
            config = config.overridden(preset, f"the injection preset of {family}")
        section = self.sections().get(INJECT_SECTION)
        if section is None:
            return config
        return config.overridden(section, self.source)

    def _read(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        import yaml

        try:
            content = yaml.safe_load(read_utf8(self.path))
        except yaml.YAMLError as error:
            raise UnlearnError(f"{self.path}: not valid YAML: {error}") from None
        if content is None:
            return {}
        if not isinstance(content, dict):
            raise UnlearnError(
                f"{self.path}: expected a mapping of method names to their "
                f"settings, got {type(content).__name__}"
            )
        return content
