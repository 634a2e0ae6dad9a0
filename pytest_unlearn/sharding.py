"""Fully sharded training (FSDP) for processes started by ``accelerate launch`` with an FSDP
config (``--use_fsdp --fsdp_version 2``).

While ``training.Trainer`` runs, torch's FSDP2 (``fully_shard``) splits every tensor of the
model across the processes: each process holds 1/N of the weights, of their gradients and of
the AdamW state, and gathers a layer's weights only while that layer computes. Before and
after training each process holds the whole model as usual (scoring deals out the items,
and the cache stores plain tensors), so FSDP helps where the model fits on one device but
its training state does not: full fine-tuning of a large model, not LoRA, whose training
state is small.

``fully_shard`` changes a module in place (its class, its parameters, its hooks) and torch
has no call that undoes it. ``ShardedTraining`` therefore records each module's attributes
before sharding, and afterwards gathers the trained values, puts every module back as it
was and writes the values into the model's own parameter objects, which stay the same
objects throughout (a method may hold them). It then checks that no trace of FSDP is left.
Buffers are put back as they were too: a model whose training changes a buffer (batch-norm
statistics; the language models here have none) would lose that change.

Every process must run the same collective operations in the same order: each forward pass
of a sharded model gathers weights from every process. The Trainer gives every process the
same number of micro-batches (a process with fewer items runs one with zero weight), and a
method must run the model the same number of times for any batch
(``UnlearningMethod.fsdp_compatible``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UnlearnError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

# How accelerate launch and users spell an environment switch that is on.
SWITCHED_ON = ("1", "true", "yes")


@dataclass(frozen=True)
class FsdpSettings:
    """What the launcher's FSDP config asks for, of the settings this module honours."""

    reshard_after_forward: bool = True
    # Class names of the modules sharded as one unit each; empty: the model's own
    # ``_no_split_modules`` (its decoder layers), as accelerate's transformer-based wrap.
    wrap_classes: tuple[str, ...] = ()


def fsdp_from_environment(environ: dict[str, str] | None = None) -> FsdpSettings | None:
    """The FSDP settings ``accelerate launch`` passed in the environment; None without
    FSDP. Settings that would change what is trained or where it lives, and that this
    module does not implement, are errors rather than ignored."""
    env = os.environ if environ is None else environ
    if env.get("ACCELERATE_USE_FSDP", "").lower() not in SWITCHED_ON:
        return None
    where = "accelerate launch with FSDP"
    version = env.get("FSDP_VERSION", "1")
    if version != "2":
        raise UnlearnError(
            f"{where}: FSDP_VERSION={version}; pytest-unlearn shards with FSDP2 (torch's "
            "fully_shard). Set fsdp_version: 2 in the accelerate config, or pass "
            "--fsdp_version 2 to accelerate launch."
        )
    refused = {
        "FSDP_OFFLOAD_PARAMS": "offloading parameters to the CPU is not supported; the "
        "sharded model stays on each process's device",
        "FSDP_ACTIVATION_CHECKPOINTING": "use --unlearn-gradient-checkpointing=on instead "
        "(transformers' gradient checkpointing)",
    }
    for variable, why in refused.items():
        if env.get(variable, "").lower() in SWITCHED_ON:
            raise UnlearnError(
                f"{where}: {variable}={env[variable]}: {why}. Set it to false "
                "in the accelerate config."
            )
    if env.get("FSDP_IGNORED_MODULES"):
        raise UnlearnError(
            f"{where}: FSDP_IGNORED_MODULES={env['FSDP_IGNORED_MODULES']!r}: "
            "ignored modules are not supported; remove fsdp_ignored_modules "
            "from the accelerate config."
        )
    policy = env.get("FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP")
    if policy != "TRANSFORMER_BASED_WRAP":
        raise UnlearnError(
            f"{where}: FSDP_AUTO_WRAP_POLICY={policy}; only TRANSFORMER_BASED_WRAP is "
            "supported (each decoder layer is sharded as one unit). Set fsdp_auto_wrap_policy: "
            "TRANSFORMER_BASED_WRAP in the accelerate config."
        )
    reshard = env.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower()
    if reshard not in ("true", "false"):
        raise UnlearnError(
            f"{where}: FSDP_RESHARD_AFTER_FORWARD={reshard!r}; FSDP2 takes true or false."
        )
    classes = tuple(
        name.strip()
        for name in env.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").split(",")
        if name.strip()
    )
    return FsdpSettings(reshard_after_forward=reshard == "true", wrap_classes=classes)


class ShardedTraining:
    """A context in which ``model`` is sharded with FSDP2 across the process group; on a
    normal exit the model is whole again, with the trained values, on every process.

    On an exception the model is left sharded: putting it back needs every process to take
    part, and the others may not have failed. The model is then unusable in one process
    (nothing publishes it: the build fails).
    """

    def __init__(self, model: PreTrainedModel, settings: FsdpSettings, stage: str) -> None:
        self.model = model
        self.settings = settings
        self.stage = stage
        self._saved: list[tuple[Any, type, dict[str, Any]]] = []
        self._parameters: dict[str, torch.nn.Parameter] = {}

    def __enter__(self) -> ShardedTraining:
        import torch
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        model = self.model
        units = self._units()
        self._parameters = dict(model.named_parameters(remove_duplicate=False))
        self._saved = [(module, type(module), _attributes(module)) for module in model.modules()]
        device = next(model.parameters()).device
        mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
        for unit in units:
            fully_shard(unit, mesh=mesh, reshard_after_forward=self.settings.reshard_after_forward)
        fully_shard(model, mesh=mesh, reshard_after_forward=self.settings.reshard_after_forward)
        # The model's own parameter objects are now outside it; free their memory.
        for parameter in {id(p): p for p in self._parameters.values()}.values():
            parameter.data = torch.empty(0, dtype=parameter.dtype, device=parameter.device)
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:
            return
        import torch

        for parameter in self.model.parameters():
            parameter.grad = None  # the last step's sharded gradients: not needed any more
        with torch.no_grad():
            # The same order in every process: each full_tensor() gathers from all of them.
            trained = {
                name: p.full_tensor() if hasattr(p, "full_tensor") else p.detach()
                for name, p in self.model.named_parameters(remove_duplicate=False)
            }
        for module, cls, attributes in self._saved:
            module.__class__ = cls
            module.__dict__.clear()
            module.__dict__.update(attributes)
        _forget_fsdp_state(module for module, _, _ in self._saved)
        for name, parameter in self._parameters.items():
            parameter.data = trained[name].detach()
        self._check_restored()

    def _units(self) -> list[Any]:
        """The modules sharded one by one before the whole model: the wrap classes (by
        default the model's ``_no_split_modules``, its decoder layers)."""
        names = set(
            self.settings.wrap_classes or getattr(self.model, "_no_split_modules", None) or ()
        )
        units = [module for module in self.model.modules() if type(module).__name__ in names]
        if self.settings.wrap_classes and not units:
            raise UnlearnError(
                f"{self.stage}: FSDP_TRANSFORMER_CLS_TO_WRAP names "
                f"{', '.join(sorted(names))}, but the model has no module of that class; its "
                "decoder layers are "
                f"{', '.join(getattr(self.model, '_no_split_modules', None) or ['unknown'])}."
            )
        if not units:
            # The whole model as one unit would be gathered whole for every pass: no saving.
            raise UnlearnError(
                f"{self.stage}: FSDP: the model ({type(self.model).__name__}) does not name its "
                "decoder layer class (transformers' _no_split_modules), so it cannot be sharded "
                "layer by layer. Name it with fsdp_transformer_layer_cls_to_wrap in the "
                "accelerate config."
            )
        return units

    def _check_restored(self) -> None:
        from torch.distributed.tensor import DTensor

        leftovers = [
            name
            for name, p in self.model.named_parameters()
            if isinstance(p, DTensor) or p.numel() == 0
        ]
        current = dict(self.model.named_parameters(remove_duplicate=False))
        if leftovers or any(current.get(name) is not p for name, p in self._parameters.items()):
            raise UnlearnError(
                f"{self.stage}: after sharded (FSDP) training the model could not be put back "
                f"together ({len(leftovers)} tensors still sharded or empty). This torch "
                "version's fully_shard changes modules in a way pytest-unlearn does not know; "
                "train without FSDP (a plain multi-GPU accelerate config)."
            )


def _attributes(module: Any) -> dict[str, Any]:
    """A module's attributes, with its dictionaries (parameters, buffers, hooks, children)
    copied: fully_shard adds to them in place."""
    return {
        key: copy.copy(value) if isinstance(value, dict) else value
        for key, value in module.__dict__.items()
    }


def _forget_fsdp_state(modules: Any) -> None:
    """torch keeps a weak map from each sharded module to its FSDP state; a module left in
    it could not be sharded again (the next stage's training)."""
    from torch.distributed import _composable_state

    mapping = _composable_state._module_state_mapping
    for module in modules:
        mapping.pop(module, None)


def is_sharded(model: Any) -> bool:
    """Whether ``model`` is sharded with FSDP2 at the moment (inside ``ShardedTraining``).
    By class name, so that a process that never shards does not import FSDP."""
    return any(
        cls.__name__ == "FSDPModule" and cls.__module__.startswith("torch.distributed")
        for cls in type(model).__mro__
    )


def drop_gathered(model: Any) -> None:
    """Free the weights each sharded module gathered and may keep for its next pass, so
    that the next pass gathers again (after the shards were written to). No-op unsharded."""
    if is_sharded(model):
        for module in model.modules():
            if is_sharded(module):
                module.reshard()


def local_values(parameter: torch.Tensor) -> torch.Tensor:
    """The values of ``parameter`` this process holds, writable in place: its local shard
    while the model is sharded, else the whole tensor."""
    to_local = getattr(parameter, "to_local", None)
    return to_local() if to_local is not None else parameter.data


def local_numel(tensor: torch.Tensor) -> int:
    """Elements this process holds of ``tensor`` (its shard, for a sharded one)."""
    return int(local_values(tensor).numel())
