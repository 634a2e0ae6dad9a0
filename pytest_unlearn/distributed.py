"""Data-parallel training and evaluation over several processes, started by ``accelerate
launch`` or ``torchrun`` (one process per GPU, or several CPU processes).

Every process holds the whole model. Each optimizer step's items are dealt out across the
processes, each computes the gradient of its share of the step's mean loss, and the
gradients are summed across processes before the optimizer steps. The AdamW state is
sharded (ZeRO stage 1, torch's ZeroRedundancyOptimizer): each process keeps and steps the
state of its own part of the trained tensors and broadcasts their new values, so every
replica ends each step identical to the others (checked after training). Item scoring
deals out the items the same way and gathers the scores on the main process; lm-eval's
general tasks split their requests across the processes (lm-eval's own data-parallel mode,
through accelerate). Only the main process writes cache entries.

accelerate's ``PartialState`` sets up the process group (NCCL on GPUs, gloo on CPUs) and the
device of each process. With accelerate's FSDP config (version 2) the trainer shards the
weights and gradients too, while it trains (``sharding.py``); DeepSpeed configs are refused
with a clear error.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, TypeVar

from .errors import UnlearnError
from .sharding import SWITCHED_ON, FsdpSettings, fsdp_from_environment

if TYPE_CHECKING:
    import torch

T = TypeVar("T")

# Gradients are summed in chunks of at most this many elements, so a fully trained large
# model does not need a second copy of all its gradients at once.
_CHUNK_ELEMENTS = 1 << 25


@dataclass(frozen=True)
class World:
    """This process's place among the processes that train together."""

    rank: int
    size: int
    # Set when the launcher asked for FSDP: training shards the model across the processes.
    fsdp: FsdpSettings | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, items: Sequence[T]) -> list[T]:
        """This process's items of a step: every ``size``-th one, starting at ``rank``."""
        return list(items[self.rank :: self.size])

    def sum_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Sum same-shaped tensors across processes, in place, in a few large messages."""
        import torch
        import torch.distributed as dist

        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for tensor in tensors:
            by_dtype.setdefault(tensor.dtype, []).append(tensor)
        for group in by_dtype.values():
            start = 0
            while start < len(group):
                end, size = start, 0
                while end < len(group) and (
                    end == start or size + group[end].numel() <= _CHUNK_ELEMENTS
                ):
                    size += group[end].numel()
                    end += 1
                chunk = group[start:end]
                flat = torch.cat([each.reshape(-1) for each in chunk])
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                offset = 0
                for each in chunk:
                    each.copy_(flat[offset : offset + each.numel()].view_as(each))
                    offset += each.numel()
                start = end

    def sum_float(self, value: float, device: torch.device) -> float:
        import torch
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor.item())

    def main_value(self, value: T) -> T:
        """The main process's ``value`` (anything picklable), on every process."""
        import torch.distributed as dist

        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_to_main(self, value: T) -> list[T] | None:
        """Every process's ``value`` (anything picklable), in rank order, on the main
        process; None on the others."""
        import torch.distributed as dist

        gathered: list[T] | None = [value] * self.size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def differing_from_main(self, value: object, device: torch.device) -> int:
        """How many processes hold another ``value`` (picklable, compared with ==) than the
        main process; the same count on every process."""
        return round(self.sum_float(float(self.main_value(value) != value), device))

    def main_says(self, flag: bool) -> bool:
        """The main process's ``flag``, on every process."""
        return bool(self.main_value(flag))

    def barrier(self) -> None:
        import torch.distributed as dist

        dist.barrier()


def launched_world_size() -> int:
    """The number of processes a launcher (accelerate launch, torchrun) started; 1 if none."""
    text = os.environ.get("WORLD_SIZE", "1")
    try:
        return int(text)
    except ValueError:
        raise UnlearnError(
            f"WORLD_SIZE={text!r} in the environment is not a number of "
            "processes; unset it or launch with accelerate launch / torchrun"
        ) from None


def check_launch_config() -> FsdpSettings | None:
    """The FSDP settings of accelerate's config, if it asks for FSDP; DeepSpeed and mixed
    precision are refused rather than silently ignored."""
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if precision != "no":
        raise UnlearnError(
            f"accelerate launch with mixed precision (ACCELERATE_MIXED_PRECISION={precision}): "
            "not supported; the models train and score in --unlearn-dtype (bfloat16 on a GPU "
            "by default). Set mixed_precision: 'no' in the accelerate config (or pass "
            "--mixed_precision no) and choose the dtype with --unlearn-dtype."
        )
    variable = "ACCELERATE_USE_DEEPSPEED"
    if os.environ.get(variable, "").lower() in SWITCHED_ON:
        raise UnlearnError(
            f"accelerate launch with DeepSpeed ({variable}={os.environ[variable]}): not "
            "supported. Launch with a plain multi-GPU config (accelerate launch --multi_gpu "
            "--num_processes N: data parallel, the AdamW state sharded), with an FSDP config "
            "(--use_fsdp --fsdp_version 2: weights, gradients and AdamW state sharded while "
            "training), or, for a model larger than one GPU, run one process with "
            "--unlearn-device=balanced."
        )
    return fsdp_from_environment()


@lru_cache(maxsize=1)
def world() -> World | None:
    """The group of processes started by a launcher, set up on first use; None for a
    single process (no launcher, or one process)."""
    if launched_world_size() <= 1:
        return None
    fsdp = check_launch_config()
    import torch
    from accelerate import PartialState

    # init_process_group (NCCL with GPUs, gloo without), and each process's own GPU.
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != launched_world_size():
        raise UnlearnError(
            f"the launcher started {launched_world_size()} processes (WORLD_SIZE), but "
            f"accelerate set up {state.num_processes}; launch with torchrun or accelerate "
            "launch --multi_gpu"
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(state.local_process_index)
    return World(rank=state.process_index, size=state.num_processes, fsdp=fsdp)


def check_fsdp_compatible(method_name: str, fsdp_compatible: bool) -> None:
    """A method trains sharded (accelerate launch with FSDP) only if its class says it can
    (``UnlearningMethod.fsdp_compatible``)."""
    group = world()
    if group is not None and group.fsdp is not None and not fsdp_compatible:
        raise UnlearnError(
            f"method {method_name!r} cannot train sharded (accelerate launch with FSDP): "
            "under FSDP every forward pass communicates with every process, so a method "
            "must run the model the same number of times for any batch, and its class "
            "declares this with fsdp_compatible = True. Build it with a plain multi-GPU "
            "config (accelerate launch --multi_gpu) or in one process."
        )


def main_process() -> bool:
    """Whether this process prints and writes: the main one, or the only one."""
    return int(os.environ.get("RANK", "0") or 0) == 0
