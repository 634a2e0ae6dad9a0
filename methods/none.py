"""``none``: no unlearning; the vanilla model is tested as it is."""

from __future__ import annotations

from dataclasses import dataclass

from pytest_unlearn.api import MethodResult, UnlearnContext, UnlearningMethod


@dataclass(frozen=True)
class NoUnlearningConfig:
    """Nothing to configure."""


class NoUnlearning(UnlearningMethod[NoUnlearningConfig]):
    name = "none"
    config_class = NoUnlearningConfig
    fsdp_compatible = True  # it does not train
    unlearns = False

    def unlearn(self, context: UnlearnContext) -> MethodResult:
        return MethodResult(context.model, {"note": "no unlearning"})
