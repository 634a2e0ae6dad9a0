"""The training loop shared by knowledge injection and every unlearning method.

Losses are averaged per item, as the reference does with batch 1 and gradient accumulation:
each optimizer step sees ``items_per_step`` items, processed in micro-batches for memory,
and the step's loss is the mean over those items of each item's own loss. AdamW, a cosine
schedule with linear warmup, optional gradient-norm clipping (``max_grad_norm``), and a
hard stop on a loss that is not finite.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .clipping import clip_gradients, max_grad_norm_problems
from .distributed import World, world
from .encoding import Encoded, collate
from .errors import UnlearnError
from .scoring import per_item_nll
from .sharding import ShardedTraining, local_numel

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

Example = TypeVar("Example")


@dataclass(frozen=True)
class TrainSettings:
    """Optimizer and schedule. ``batch_size * grad_accum`` items make one optimizer step.

    The defaults are the paper's baseline unlearning settings (2 epochs, batch 1,
    accumulation 16, lr 5e-5, cosine, 3% warmup). A method's config dataclass inherits
    these fields, so its YAML section can override any of them.
    """

    lr: float = 5e-5
    epochs: int = 2
    batch_size: int = 1
    grad_accum: int = 16
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    scheduler: str = "cosine"
    micro_batch_size: int = 16
    shuffle: bool = True
    # Clip each step's gradient to this global L2 norm; None (the default): no clipping
    # (clipping.py says why, and what the reference does).
    max_grad_norm: float | None = None

    @property
    def items_per_step(self) -> int:
        return self.batch_size * self.grad_accum

    def problems(self) -> list[str]:
        """What is wrong with these values, one sentence each; a subclass adds its own
        fields' problems to its parent's."""
        problems = []
        if not (math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a finite number > 0 (got {self.lr})")
        for name in ("epochs", "batch_size", "grad_accum", "micro_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            problems.append(f"weight_decay must be a finite number >= 0 (got {self.weight_decay})")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1) (got {self.warmup_ratio})")
        problems += max_grad_norm_problems(self.max_grad_norm)
        if self.scheduler not in ("cosine", "constant"):
            problems.append(f"scheduler must be 'cosine' or 'constant' (got {self.scheduler!r})")
        return problems

    def check(self, where: str) -> None:
        """Raise an error naming ``where`` and every problem of these values."""
        problems = self.problems()
        if problems:
            raise UnlearnError(f"{where}: " + "; ".join(problems))


@dataclass
class TrainLog:
    steps: int = 0
    epochs_run: int = 0
    losses: list[float] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    processes: int = 1  # how many processes trained together (distributed.world())
    # What the processes split between them: "" (one process), "optimizer" (ZeRO stage 1:
    # the AdamW state) or "fsdp" (weights, gradients and AdamW state, while training).
    sharding: str = ""
    optimizer_state_bytes: int = 0  # the AdamW state this process held (its share, if several)
    clipped_steps: int = 0  # steps whose gradient norm was above max_grad_norm (and clipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "epochs_run": self.epochs_run,
            "processes": self.processes,
            "sharding": self.sharding,
            "first_loss": self.losses[0] if self.losses else None,
            "last_loss": self.losses[-1] if self.losses else None,
            "mean_step_seconds": (
                sum(self.step_seconds) / len(self.step_seconds) if self.step_seconds else None
            ),
            "stopped_early": self.stopped_early,
            "optimizer_state_bytes": self.optimizer_state_bytes,
            "clipped_steps": self.clipped_steps,
        }


def _state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the optimizer state this process holds (a ZeroRedundancyOptimizer's: its
    local part's)."""
    import torch

    local = getattr(optimizer, "optim", optimizer)
    return sum(
        local_numel(value) * value.element_size()
        for state in local.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.dim() > 0
    )


def answer_nll(model: PreTrainedModel, batch: Sequence[Encoded], pad_id: int) -> torch.Tensor:
    """Mean answer-token NLL of each encoded record of ``batch``, with gradients."""
    device = next(model.parameters()).device
    inputs = collate(batch, pad_id, device)
    logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    return per_item_nll(logits, inputs["labels"])


class Trainer(Generic[Example]):
    """Runs ``settings.epochs`` epochs over ``examples``; ``item_losses`` maps a micro-batch
    to one loss per item (shape ``(len(batch),)``)."""

    def __init__(
        self,
        model: PreTrainedModel,
        examples: Sequence[Example],
        item_losses: Callable[[list[Example]], torch.Tensor],
        settings: TrainSettings,
        seed: int,
        stage: str,
        progress: Callable[[str], None] | None = None,
        after_step: Callable[[int], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> None:
        if not examples:
            raise UnlearnError(f"{stage}: nothing to train on (no examples)")
        settings.check(stage)
        self.model = model
        self.examples = list(examples)
        self.item_losses = item_losses
        self.settings = settings
        self.seed = seed
        self.stage = stage
        self.progress = progress or (lambda message: None)
        # Called with 0 before the first step and with each step's number after it (training
        # curves); it must leave the model's weights and mode as it found them.
        self.after_step = after_step
        # Called once when training starts: after the model is sharded (FSDP), before the
        # first step (a frozen copy of the starting values takes it then).
        self.on_start = on_start
        self.group: World | None = None  # the processes training together, set by run()

    @property
    def sharded(self) -> bool:
        """Whether run() trains the model sharded across the processes (FSDP)."""
        return self.group is not None and self.group.fsdp is not None

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.examples) / self.settings.items_per_step)

    def run(self, after_epoch: Callable[[int], bool] | None = None) -> TrainLog:
        """Train; ``after_epoch(epoch)`` returning True stops early (e.g. target reached)."""
        if not any(p.requires_grad for p in self.model.parameters()):
            raise UnlearnError(f"{self.stage}: the model has no trainable parameter")
        self.group = world()
        if self.group is not None:
            self._check_same_tensors(self.group)
        sharding: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if self.group is not None and self.group.fsdp is not None:
            sharding = ShardedTraining(self.model, self.group.fsdp, self.stage)
        with sharding:
            log = self._train(after_epoch)
        self.model.eval()
        if self.group is not None:
            self._check_replicas_agree(self.group)
        return log

    def _train(self, after_epoch: Callable[[int], bool] | None) -> TrainLog:
        import torch
        from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

        settings = self.settings
        # Taken after sharding: the optimizer steps each process's shards (FSDP).
        optimizer = self._optimizer([p for p in self.model.parameters() if p.requires_grad])
        total = self.steps_per_epoch * settings.epochs
        warmup = math.ceil(settings.warmup_ratio * total)
        if settings.scheduler == "cosine":
            schedule = get_cosine_schedule_with_warmup(optimizer, warmup, total)
        else:
            schedule = get_constant_schedule_with_warmup(optimizer, warmup)
        order_rng = random.Random(self.seed)
        torch.manual_seed(self.seed)
        log = TrainLog(
            processes=1 if self.group is None else self.group.size,
            sharding="" if self.group is None else "fsdp" if self.sharded else "optimizer",
        )
        if self.on_start is not None:
            self.on_start()
        if self.after_step is not None:
            self.after_step(0)
        self.model.train()
        checks: list[float] = []  # seconds of each after_epoch check (scoring, for injection)
        for epoch in range(settings.epochs):
            order = list(range(len(self.examples)))
            if settings.shuffle:
                order_rng.shuffle(order)
            for start in range(0, len(order), settings.items_per_step):
                step_started = time.perf_counter()
                step_items = [
                    self.examples[i] for i in order[start : start + settings.items_per_step]
                ]
                loss_value, clipped = self._step(step_items, optimizer)
                log.clipped_steps += clipped
                if not math.isfinite(loss_value):
                    raise UnlearnError(
                        f"{self.stage}: the loss became {loss_value} at step {log.steps + 1} "
                        f"of {total} (lr {settings.lr}). The method diverged; lower its lr in "
                        "--unlearn-config or shorten training."
                    )
                schedule.step()
                log.steps += 1
                log.losses.append(loss_value)
                log.step_seconds.append(time.perf_counter() - step_started)
                self._report(log, total, epoch, after_epoch is not None, checks)
                if self.after_step is not None:
                    self.after_step(log.steps)
            log.epochs_run = epoch + 1
            if after_epoch is not None and epoch + 1 < settings.epochs:
                check_started = time.perf_counter()
                stop = self._main_decides(after_epoch(epoch))
                checks.append(time.perf_counter() - check_started)
                if stop:
                    log.stopped_early = True
                    break
        self.model.eval()
        log.optimizer_state_bytes = _state_bytes(optimizer)
        return log

    def _optimizer(self, parameters: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """AdamW; under a launcher, each process keeps the AdamW state (two tensors the size
        of the trained ones) of its own part of the trained tensors only: torch's
        ZeroRedundancyOptimizer (ZeRO stage 1) steps each part in its owner process and
        broadcasts the new values, so every replica still applies the same update."""
        import torch

        settings = self.settings
        if self.group is None or self.sharded:  # FSDP: each process holds its shards only
            return torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
        import warnings

        with warnings.catch_warnings():
            # Its package scripts functional optimizers with the deprecated torch.jit.script.
            warnings.simplefilter("ignore", DeprecationWarning)
            from torch.distributed.optim import ZeroRedundancyOptimizer
        return ZeroRedundancyOptimizer(
            parameters,
            optimizer_class=torch.optim.AdamW,
            lr=settings.lr,
            weight_decay=settings.weight_decay,
        )

    def _check_replicas_agree(self, group: World) -> None:
        """The processes end with the same weights, trained and frozen (each scores its
        share of the items with its own replica). A difference is not float rounding: every
        replica takes the trained values from the optimizer step's broadcast, and the frozen
        ones from the same start."""
        import torch

        with torch.no_grad():
            checksum = float(
                torch.stack(
                    [p.detach().sum(dtype=torch.float64) for p in self.model.parameters()]
                ).sum()
            )
        differing = group.differing_from_main(checksum, next(self.model.parameters()).device)
        if differing:
            raise UnlearnError(
                f"{self.stage}: after training, {differing} of {group.size} processes hold "
                "other weights than the main process. Please report this with the command; "
                "meanwhile, build this model in one process."
            )

    def _check_same_tensors(self, group: World) -> None:
        """Processes that train together must train the same tensors (a method that picks
        them, as MemFlex does, must pick the same in each)."""
        import hashlib

        names = [name for name, p in self.model.named_parameters() if p.requires_grad]
        digest = hashlib.sha256("\n".join(names).encode()).hexdigest()
        differing = group.differing_from_main(digest, next(self.model.parameters()).device)
        if differing:
            raise UnlearnError(
                f"{self.stage}: {differing} of {group.size} processes train other "
                "tensors than the main process; a method that chooses its tensors (MemFlex's "
                "localization) chose differently in different processes, e.g. through "
                "non-deterministic GPU kernels. Build this model in one process."
            )

    def _main_decides(self, stop: bool) -> bool:
        """Every process stops when the main one does (they must take the same steps)."""
        return stop if self.group is None else self.group.main_says(stop)

    def _step(self, items: list[Example], optimizer: torch.optim.Optimizer) -> tuple[float, bool]:
        """One optimizer step: the step's loss, and whether its gradient was clipped; with a
        non-finite loss it returns before stepping, so the weights never see it (the caller
        stops training).

        Under a launcher (``distributed.world()``), each process takes its share of the
        step's items; each share's loss is divided by the step's full item count, so the
        gradients summed across processes are those of the step's mean, as in one process.
        Sharded (FSDP), every process runs as many micro-batches as the one with the most
        items, since each forward and backward pass communicates with all of them; a
        process with fewer items runs one of the step's items with weight 0.
        """
        import torch

        group = self.group
        optimizer.zero_grad(set_to_none=True)
        total_loss = 0.0
        micro = self.settings.micro_batch_size
        mine = items if group is None else group.share(items)
        batches = [(mine[start : start + micro], 1.0) for start in range(0, len(mine), micro)]
        # FSDP averages the gradients of the processes: scale each one's up to sum them.
        scale = group.size if self.sharded and group is not None else 1
        if self.sharded and group is not None:
            most = math.ceil(math.ceil(len(items) / group.size) / micro)
            batches += [(items[:1], 0.0)] * (most - len(batches))
        for batch, weight in batches:
            try:
                losses = self.item_losses(batch)
                self._check_losses(losses, len(batch))
                # The step's loss is the mean over its items: each micro-batch adds its share.
                loss = losses.sum() * weight / len(items)
                (loss * scale if scale != 1 else loss).backward()
            except torch.OutOfMemoryError:
                raise UnlearnError(
                    f"{self.stage}: out of memory on a micro-batch of {len(batch)} items. Lower "
                    f"micro_batch_size (now {micro}) in --unlearn-config (the per-item loss "
                    "average, and so the result, does not change), use --unlearn-dtype=bfloat16 "
                    "on a GPU, or a device with more memory."
                ) from None
            total_loss += float(loss.detach())
        if group is not None:
            if not self.sharded:  # FSDP sums them in each backward pass
                self._sum_gradients(group, optimizer)
            total_loss = group.sum_float(total_loss, next(self.model.parameters()).device)
        clipped = False
        if math.isfinite(total_loss):
            clipped = clip_gradients(optimizer, self.settings.max_grad_norm)
            optimizer.step()
        return total_loss, clipped

    def _check_losses(self, losses: Any, items: int) -> None:
        """``item_losses`` gives one loss per item: a scalar (a batch mean) would be
        divided by the step's item count a second time, silently shrinking the step."""
        shape = tuple(getattr(losses, "shape", ()))
        if shape != (items,):
            raise UnlearnError(
                f"{self.stage}: item_losses returned {type(losses).__name__} of shape {shape} "
                f"for a micro-batch of {items} items; it must return one loss per item, a "
                f"tensor of shape ({items},). The Trainer averages the items' losses over "
                "each optimizer step itself: do not reduce them to a mean or a sum."
            )

    @staticmethod
    def _sum_gradients(group: World, optimizer: torch.optim.Optimizer) -> None:
        """Sum every process's gradients. A tensor no process computed a gradient for stays
        without one, as in one process (AdamW skips it); otherwise a process without one
        adds zeros."""
        import torch

        trainable = [p for params in optimizer.param_groups for p in params["params"]]
        has_grad = torch.tensor(
            [float(p.grad is not None) for p in trainable],
            dtype=torch.float64,
            device=trainable[0].device,
        )
        group.sum_([has_grad])
        trainable = [p for p, count in zip(trainable, has_grad.tolist()) if count > 0]
        for parameter in trainable:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        group.sum_([p.grad for p in trainable])

    def _report(
        self, log: TrainLog, total: int, epoch: int, may_stop: bool, checks: list[float]
    ) -> None:
        """One progress line per step: the ETA counts the steps still to run at the pace of
        the last ones, plus the epoch-end checks still to come at their measured pace (so it
        does not jump after a check); "up to" when a check may stop training early."""
        recent = log.step_seconds[-20:]
        eta = sum(recent) / len(recent) * (total - log.steps)
        if checks:
            eta += sum(checks) / len(checks) * max(0, self.settings.epochs - 1 - epoch)
        bound = "up to " if may_stop else ""
        self.progress(
            f"{self.stage}: step {log.steps}/{bound}{total} loss {log.losses[-1]:.4f} "
            f"eta {bound}{eta:.0f}s"
        )
