"""Knowledge injection: the vanilla model is the starting model after it learned every
record of the domain (paper Table 7), so that forgetting can be measured against it.

The tiny model trains in full until it recalls (almost) every answer token; a pretrained
model trains a LoRA adapter with the paper's settings per domain. The ``inject`` section of
--unlearn-config changes any training field, and ``target_token_accuracy`` stops training
early once reached. A vanilla model that recalls too few of its records exactly comes with
an `InjectionWarning` on every run that uses it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clipping import keyed
from .data import Record
from .encoding import encode_all
from .errors import InjectionWarning, UnlearnError
from .models import pad_token_id, set_trainable
from .parsing import checked_value
from .scoring import score
from .training import Trainer, TrainSettings, answer_nll
from .vocabulary import MAX_LENGTH, SCOPES

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Below this share of its records recalled exactly, the vanilla model's figures come with an
# InjectionWarning (the tiny model reaches 0.97 to 1.0 on the builtin and real data).
MIN_INJECTED_EXACT_SHARE = 0.9
# The --unlearn-config section of knowledge injection settings (beside one per method).
INJECT_SECTION = "inject"


@dataclass(frozen=True)
class InjectionConfig:
    """How knowledge is injected. The tiny model trains until it recalls (almost) every
    answer token; LoRA injection follows paper Table 7 per domain."""

    # Cosine decay over at most 40 epochs settles the last few tokens that a constant lr
    # keeps flipping; training stops early once the target is reached.
    tiny: TrainSettings = TrainSettings(
        lr=1e-3,
        epochs=40,
        batch_size=16,
        grad_accum=1,
        weight_decay=0.0,
        warmup_ratio=0.0,
        scheduler="cosine",
    )
    tiny_target_token_accuracy: float | None = 0.999
    # The tiny model stands in for a pretrained one, which already models general text: it
    # also learns the builtin general text, so that out-of-distribution retain data (GA+GD
    # and GA+KL OOD) is text it knows, as in the paper. Without this, its NLL on that text
    # was 10.5 against 0.05 on the forget set, and descending on it swamped the ascent
    # (benchmarks/probe_nll.py, docs/results.md).
    tiny_learns_general_text: bool = True
    lora_privacy: TrainSettings = TrainSettings(
        lr=1e-4,
        epochs=10,
        batch_size=16,
        grad_accum=4,
        weight_decay=1e-4,
        warmup_ratio=0.0,
        micro_batch_size=4,
    )
    lora_copyright: TrainSettings = TrainSettings(
        lr=3e-4,
        epochs=20,
        batch_size=16,
        grad_accum=4,
        weight_decay=1e-4,
        warmup_ratio=0.0,
        micro_batch_size=4,
    )
    # LoRA injection runs the paper's epochs; with a target it stops early once reached.
    lora_target_token_accuracy: float | None = None

    def training(self, tiny: bool, domain: str) -> tuple[TrainSettings, float | None]:
        """The training settings and the early-stop target of one injection."""
        if tiny:
            return self.tiny, self.tiny_target_token_accuracy
        settings = self.lora_privacy if domain == "privacy" else self.lora_copyright
        return settings, self.lora_target_token_accuracy

    def overridden(self, section: dict[str, Any], source: str) -> InjectionConfig:
        """This config with the ``inject`` section of --unlearn-config applied: its
        TrainSettings keys replace those of the tiny model's and both domains' LoRA
        settings, and ``target_token_accuracy`` (0 to 1, or null for none) sets when
        training stops early, checked every second epoch."""
        defaults = TrainSettings()
        known = [field.name for field in dataclasses.fields(TrainSettings)]
        changes: dict[str, Any] = {}
        targets: dict[str, float | None] = {}
        for key, value in section.items():
            where = f"{source}: {INJECT_SECTION}.{key}"
            if key == "target_token_accuracy":
                if value is not None:
                    value = checked_value(1.0, value, where)
                    if not 0 < value <= 1:
                        raise UnlearnError(
                            f"{where} = {value!r} must be in (0, 1], a token "
                            "accuracy over the injected records, or null"
                        )
                targets = {"tiny_target_token_accuracy": value, "lora_target_token_accuracy": value}
            elif key in known:
                changes[key] = checked_value(getattr(defaults, key), value, where)
            else:
                raise UnlearnError(
                    f"{source}: section {INJECT_SECTION!r} has no key {key!r}; "
                    f"its keys are: {', '.join(known + ['target_token_accuracy'])}"
                )
        trained = {
            name: dataclasses.replace(getattr(self, name), **changes)
            for name in ("tiny", "lora_privacy", "lora_copyright")
        }
        for settings in trained.values():
            settings.check(f"{source}: {INJECT_SECTION}")
        return dataclasses.replace(self, **trained, **targets)  # type: ignore[arg-type]

    def as_payload(self) -> dict[str, Any]:
        """The fields that go into a vanilla model's cache key (an unset LoRA target is
        left out, so that models injected before it existed keep their keys)."""
        fields = dataclasses.asdict(self)
        if fields["lora_target_token_accuracy"] is None:
            del fields["lora_target_token_accuracy"]
        for name in ("tiny", "lora_privacy", "lora_copyright"):
            fields[name] = keyed(fields[name])
        return fields


def inject(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    trainable: list[str],
    records: Sequence[Record],
    settings: TrainSettings,
    target: float | None,
    seed: int,
    domain: str,
    progress: Callable[[str], None],
    scopes: Sequence[str] = (),
) -> dict[str, Any]:
    """Train ``trainable`` on every record's answer until ``settings.epochs`` are done or
    the token accuracy reaches ``target`` (checked every second epoch); return the log
    that is saved with the vanilla model (``injection.json``). ``scopes`` names the scope
    of each record, in order ('general' for records beyond it): the log has the share
    recalled exactly per scope."""
    encoded = encode_all(tokenizer, records, MAX_LENGTH, f"{domain} injection")
    pad = pad_token_id(tokenizer)
    set_trainable(model, trainable)

    def reached_target(epoch: int) -> bool:
        if target is None or (epoch + 1) % 2:
            return False
        accuracy = _token_accuracy(model, encoded, pad)
        progress(
            f"inject {domain}: epoch {epoch + 1} token accuracy {accuracy:.4f} (target {target})"
        )
        return accuracy >= target

    trainer = Trainer(
        model,
        encoded,
        lambda batch: answer_nll(model, batch, pad),
        settings,
        seed,
        f"inject {domain}",
        progress,
    )
    log = trainer.run(after_epoch=reached_target)
    scores = score(model, encoded, pad)
    accuracy = sum(s.token_accuracy for s in scores) / len(scores)
    exact = sum(s.token_accuracy == 1.0 for s in scores) / len(scores)
    by_scope = exact_share_by_scope(scores, scopes)
    progress(
        f"inject {domain}: done after {log.epochs_run} "
        f"epoch{'' if log.epochs_run == 1 else 's'}, token accuracy {accuracy:.4f}, "
        f"{exact:.1%} of {len(records)} records recalled exactly ({_per_scope(by_scope)})"
    )
    return {
        "injected": True,
        "records": len(records),
        "train_log": log.to_dict(),
        "token_accuracy": accuracy,
        "exact_share": exact,
        "exact_share_by_scope": by_scope,
        "settings": dataclasses.asdict(settings),
    }


def exact_share_by_scope(scores: Sequence[Any], scopes: Sequence[str]) -> dict[str, float]:
    """The share of records recalled exactly (every answer token the argmax), per scope;
    records beyond ``scopes`` count as 'general'."""
    totals: dict[str, list[int]] = {}
    for index, each in enumerate(scores):
        scope = scopes[index] if index < len(scopes) else "general"
        counts = totals.setdefault(scope, [0, 0])
        counts[0] += each.token_accuracy == 1.0
        counts[1] += 1
    return {scope: hits / total for scope, (hits, total) in totals.items()}


def _per_scope(shares: dict[str, float]) -> str:
    return ", ".join(f"{scope} {share:.1%}" for scope, share in shares.items())


def warn_if_weak(
    log: dict[str, Any], domain: str, progress: Callable[[str], None] | None = None
) -> None:
    """Say how much of its records the vanilla model recalls exactly, per scope (when the
    log has it), and warn when it is too little overall or in any scope."""
    exact = log.get("exact_share")
    by_scope: dict[str, float] = log.get("exact_share_by_scope") or {}
    if log.get("injected") and progress is not None and exact is not None:
        progress(
            f"vanilla {domain}: {exact:.1%} of {log['records']} records recalled exactly"
            + (f" ({_per_scope(by_scope)})" if by_scope else "")
        )
    if not log.get("injected") or exact is None:
        return
    weak = [s for s in SCOPES if by_scope.get(s, 1.0) < MIN_INJECTED_EXACT_SHARE]
    if exact >= MIN_INJECTED_EXACT_SHARE and not weak:
        return
    scopes = f" ({_per_scope(by_scope)})" if by_scope else ""
    warnings.warn(
        InjectionWarning(
            f"knowledge injection ({domain}) left the vanilla model recalling {exact:.1%} of its "
            f"{log['records']} records exactly{scopes} (token accuracy "
            f"{log['token_accuracy']:.4f}; the minimum is {MIN_INJECTED_EXACT_SHARE:.0%} "
            "overall and in each scope): what it never learned passes every forget "
            f"test, so Unlearn Success overstates every method. Inject harder with an "
            f"'{INJECT_SECTION}' section in --unlearn-config (epochs, lr, target_token_accuracy; "
            "docs/models.md)"
        ),
        stacklevel=3,
    )


def _token_accuracy(model: PreTrainedModel, encoded: Sequence[Any], pad: int) -> float:
    scores = score(model, encoded, pad)
    return sum(s.token_accuracy for s in scores) / len(scores)
