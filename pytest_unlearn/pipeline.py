"""Builds the models that the fixtures hand out, through the cache.

vanilla   = the starting model with the domain's knowledge injected (paper Table 7): full
            training for the tiny model, a LoRA adapter for pretrained ones.
unlearned = the vanilla model after one method ran on the domain's train splits.

Each is cached under a key of everything that determines it; a second identical run
loads instead of training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import __version__
from .cache import ModelCache, cache_key, load_tensors, save_tensors
from .data import DomainData, Record, load_general_text, records_hash
from .encoding import encode_all
from .errors import UnlearnError
from .method import UnlearnContext, UnlearningMethod, code_fingerprint
from .models import (ModelHandle, ModelSpec, all_tensor_names, attach_lora, build_tiny_model,
                     enable_gradient_checkpointing, get_tensors, load_pretrained,
                     lora_tensor_names, pad_token_id, put_tensors, resolve_device,
                     resolve_dtype, set_trainable, tiny_from_files, tokenizer_texts,
                     train_tiny_tokenizer)
from .scoring import score
from .settings import Settings
from .training import TrainSettings, Trainer, answer_nll

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MAX_LENGTH = 256
# Below this share of its records recalled exactly, the vanilla model's figures come with an
# InjectionWarning (the tiny model reaches 0.97 to 1.0 on the builtin and real data).
MIN_INJECTED_EXACT_SHARE = 0.9
ATTACK_BATCH_SIZE = 8
# The tiny model's injection lr (1e-3) with a fresh AdamW breaks the model instead of
# restoring it: after 8 steps the vanilla model recalled 7% of the unlearn val items it had
# recalled 100% of. At 1e-4 the vanilla model keeps them all and what gradient ascent
# removed on the builtin data comes back (measured with suites/privacy/test_attack.py).
TINY_ATTACK_LR = 1e-4
RESERVED_FILES = {"method_log", "method_config", "manifest", "injection", "model_config"}


@dataclass(frozen=True)
class InjectionConfig:
    """How knowledge is injected. The tiny model trains until it recalls (almost) every
    answer token; LoRA injection follows paper Table 7 per domain."""

    # Cosine decay over at most 40 epochs settles the last few tokens that a constant lr
    # keeps flipping; training stops early once the target is reached.
    tiny: TrainSettings = TrainSettings(lr=1e-3, epochs=40, batch_size=16, grad_accum=1,
                                        weight_decay=0.0, warmup_ratio=0.0, scheduler="cosine")
    tiny_target_token_accuracy: float | None = 0.999
    # The tiny model stands in for a pretrained one, which already models general text: it
    # also learns the builtin general text, so that out-of-distribution retain data (GA+GD
    # and GA+KL OOD) is text it knows, as in the paper. Without this, its NLL on that text
    # was 10.5 against 0.05 on the forget set, and descending on it swamped the ascent
    # (benchmarks/probe_nll.py, docs/results.md).
    tiny_learns_general_text: bool = True
    lora_privacy: TrainSettings = TrainSettings(lr=1e-4, epochs=10, batch_size=16, grad_accum=4,
                                                weight_decay=1e-4, warmup_ratio=0.0,
                                                micro_batch_size=4)
    lora_copyright: TrainSettings = TrainSettings(lr=3e-4, epochs=20, batch_size=16,
                                                  grad_accum=4, weight_decay=1e-4,
                                                  warmup_ratio=0.0, micro_batch_size=4)
    # LoRA injection runs the paper's epochs; with a target it stops early once reached.
    lora_target_token_accuracy: float | None = None

    def overridden(self, section: dict[str, Any], source: str) -> InjectionConfig:
        """This config with the ``inject`` section of --unlearn-config applied: its
        TrainSettings keys replace those of the tiny model's and both domains' LoRA
        settings, and ``target_token_accuracy`` (0 to 1, or null for none) sets when
        training stops early, checked every second epoch."""
        from .method import checked_value

        defaults = TrainSettings()
        known = [field.name for field in dataclasses.fields(TrainSettings)]
        changes: dict[str, Any] = {}
        targets: dict[str, float | None] = {}
        for key, value in section.items():
            where = f"{source}: inject.{key}"
            if key == "target_token_accuracy":
                if value is not None:
                    value = checked_value(1.0, value, where)
                    if not 0 < value <= 1:
                        raise UnlearnError(f"{where} = {value!r} must be in (0, 1], a token "
                                           "accuracy over the injected records, or null")
                targets = {"tiny_target_token_accuracy": value,
                           "lora_target_token_accuracy": value}
            elif key in known:
                changes[key] = checked_value(getattr(defaults, key), value, where)
            else:
                raise UnlearnError(f"{source}: section 'inject' has no key {key!r}; its keys "
                                   f"are: {', '.join(known + ['target_token_accuracy'])}")
        trained = {name: dataclasses.replace(getattr(self, name), **changes)
                   for name in ("tiny", "lora_privacy", "lora_copyright")}
        for settings in trained.values():
            settings.check(f"{source}: inject")
        return dataclasses.replace(self, **trained, **targets)

    def as_payload(self) -> dict[str, Any]:
        """The fields that go into a vanilla model's cache key (an unset LoRA target is
        left out, so that models injected before it existed keep their keys)."""
        fields = dataclasses.asdict(self)
        if fields["lora_target_token_accuracy"] is None:
            del fields["lora_target_token_accuracy"]
        return fields


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    versions = {"python": platform.python_version(), "pytest_unlearn": __version__}
    for name in ("torch", "transformers", "peft", "tokenizers", "safetensors"):
        versions[name] = version(name)
    return versions


def _check_injection(log: dict[str, Any], domain: str) -> None:
    """Warn when the injected model recalls too few of its records exactly."""
    import warnings

    from .errors import InjectionWarning

    exact = log.get("exact_share")
    if not log.get("injected") or exact is None or exact >= MIN_INJECTED_EXACT_SHARE:
        return
    warnings.warn(InjectionWarning(
        f"knowledge injection ({domain}) left the vanilla model recalling {exact:.1%} of its "
        f"{log['records']} records exactly (token accuracy {log['token_accuracy']:.4f}, "
        f"below {MIN_INJECTED_EXACT_SHARE:.0%}): what it never learned passes every forget "
        "test, so Unlearn Success overstates every method. Inject harder with an 'inject' "
        "section in --unlearn-config (epochs, lr, target_token_accuracy; README, Models, "
        "injection and the cache)"), stacklevel=2)


class Pipeline:
    def __init__(self, settings: Settings, cache: ModelCache, progress: Callable[[str], None],
                 injection: InjectionConfig | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self.progress = progress
        self.spec = ModelSpec.parse(settings.model)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device, tiny=self.spec.is_tiny)
        self.injection = injection or InjectionConfig()
        self._general: list[Record] | None = None

    @property
    def general_text(self) -> list[Record]:
        """The out-of-distribution retain text of the *_ood methods (--unlearn-ood-data)."""
        if self._general is None:
            self._general = load_general_text(self.settings.ood_data)
        return self._general

    # --- vanilla ---------------------------------------------------------------------------

    def vanilla_payload(self, data: DomainData) -> dict[str, Any]:
        """Everything that determines the vanilla model. A pretrained model tested as it is
        (--unlearn-inject=never) depends on no data, domain or seed, so both domains and
        every seed share its key, and what is computed from it alone (general-task scores)
        is computed once."""
        payload = {"kind": "vanilla", "model": self.spec.fingerprint(self.cache.file_hashes),
                   "inject": self.settings.inject, "dtype": str(self.dtype),
                   "versions": library_versions()}
        if self.tested_as_it_is:
            return payload
        return {**payload, "data": data.content_hash(), "domain": data.domain,
                "injection": self.injection.as_payload(), "seed": self.settings.seed}

    @property
    def tested_as_it_is(self) -> bool:
        """The vanilla model is the pretrained one, loaded as it is (no injection)."""
        return not self.spec.is_tiny and self.settings.inject == "never"

    def load_vanilla(self, data: DomainData) -> ModelHandle:
        payload = self.vanilla_payload(data)
        if self.tested_as_it_is:
            model, tokenizer = self._load_base()
            return ModelHandle(model, tokenizer, self.spec, [], cache_key(payload))
        path, _ = self.cache.get_or_build(
            "vanilla", payload, lambda folder: self._build_vanilla(data, folder),
            f"the vanilla model ({self.spec.requested}, {data.domain} data, seed "
            f"{self.settings.seed})")
        _check_injection(json.loads((path / "injection.json").read_text()), data.domain)
        return self._vanilla_from_entry(path, cache_key(payload))

    def _build_vanilla(self, data: DomainData, folder: Path) -> None:
        if self.spec.is_tiny:
            self.progress(f"building the tiny model for {data.domain} on {self.device}, "
                          f"{str(self.dtype).removeprefix('torch.')}")
            # Trained on the domain and the builtin general text: any other text still
            # tokenizes (byte-level), and the vanilla model does not depend on --unlearn-ood-data.
            tokenizer = train_tiny_tokenizer(
                tokenizer_texts(data.all_records() + load_general_text()))
            model = build_tiny_model(tokenizer, self.settings.seed).to(self.device, self.dtype)
            trainable = all_tensor_names(model)
            tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
            (folder / "model_config.json").write_text(model.config.to_json_string())
        else:
            base, tokenizer = self._load_base()
            model = attach_lora(base)
            trainable = lora_tensor_names(model)
        log: dict[str, Any] = {"injected": False}
        if self.settings.inject != "never":
            log = self._inject(model, tokenizer, trainable, data)
        save_tensors(folder / "weights.safetensors", get_tensors(model, trainable))
        (folder / "injection.json").write_text(json.dumps(log, indent=1))

    def _inject(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                trainable: list[str], data: DomainData) -> dict[str, Any]:
        records = data.all_records()
        if self.spec.is_tiny and self.injection.tiny_learns_general_text:
            records = records + load_general_text()
        encoded = encode_all(tokenizer, records, MAX_LENGTH, f"{data.domain} injection")
        pad = pad_token_id(tokenizer)
        set_trainable(model, trainable)

        if self.spec.is_tiny:
            settings = self.injection.tiny
            target = self.injection.tiny_target_token_accuracy
        else:
            settings = (self.injection.lora_privacy if data.domain == "privacy"
                        else self.injection.lora_copyright)
            target = self.injection.lora_target_token_accuracy
        accuracy: dict[str, float] = {}

        def reached_target(epoch: int) -> bool:
            if target is None or (epoch + 1) % 2:
                return False
            scores = score(model, encoded, pad)
            accuracy["token"] = sum(s.token_accuracy for s in scores) / len(scores)
            self.progress(f"inject {data.domain}: epoch {epoch + 1} token accuracy "
                          f"{accuracy['token']:.4f} (target {target})")
            return accuracy["token"] >= target

        trainer = Trainer(model, encoded, lambda batch: answer_nll(model, batch, pad), settings,
                          self.settings.seed, f"inject {data.domain}", self.progress)
        log = trainer.run(after_epoch=reached_target)
        scores = score(model, encoded, pad)
        final_accuracy = sum(s.token_accuracy for s in scores) / len(scores)
        exact = sum(s.token_accuracy == 1.0 for s in scores) / len(scores)
        self.progress(f"inject {data.domain}: done after {log.epochs_run} "
                      f"epoch{'' if log.epochs_run == 1 else 's'}, token accuracy "
                      f"{final_accuracy:.4f}, {exact:.1%} of {len(records)} records recalled "
                      "exactly")
        return {"injected": True, "records": len(records), "train_log": log.to_dict(),
                "token_accuracy": final_accuracy, "exact_share": exact,
                "settings": dataclasses.asdict(settings)}

    def _vanilla_from_entry(self, path: Path, key: str) -> ModelHandle:
        tensors = load_tensors(path / "weights.safetensors")
        if self.spec.is_tiny:
            model, tokenizer = tiny_from_files(path)
            model = model.to(self.device, self.dtype)
        else:
            base, tokenizer = self._load_base()
            model = attach_lora(base)
        put_tensors(model, tensors, f"cache entry {path}")
        model.eval()
        return ModelHandle(model, tokenizer, self.spec, sorted(tensors), key)

    def load_reference(self) -> ModelHandle:
        """The --unlearn-reference model, as it is (no injection, no adapter)."""
        spec = ModelSpec.parse(str(self.settings.reference))
        self.progress(f"loading reference {spec.requested} ({spec.location})")
        if spec.is_tiny:
            raise UnlearnError("--unlearn-reference=tiny: the tiny model is built per domain; "
                               "name a model folder, .gguf file or hub id")
        model, tokenizer = load_pretrained(spec, self.device, self.dtype,
                                           self.settings.trust_remote_code)
        return ModelHandle(model, tokenizer, spec, [], f"reference:{spec.requested}")

    def _load_base(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        choice = self.settings.gradient_checkpointing
        checkpointing = choice == "on" or (choice == "auto" and self.device.type == "cuda")
        self.progress(f"loading {self.spec.requested} ({self.spec.location}) on "
                      f"{'balanced GPUs' if self.settings.device == 'balanced' else self.device}"
                      f", {str(self.dtype).removeprefix('torch.')}"
                      f"{', gradient checkpointing in training' if checkpointing else ''}")
        model, tokenizer = load_pretrained(self.spec, self.device, self.dtype,
                                           self.settings.trust_remote_code,
                                           balanced=self.settings.device == "balanced")
        if checkpointing:
            enable_gradient_checkpointing(model)
        return model, tokenizer

    # --- unlearned -------------------------------------------------------------------------

    def unlearned_payload(self, data: DomainData, method_name: str,
                          method_class: type[UnlearningMethod], config: Any,
                          seed: int) -> dict[str, Any]:
        """Everything that determines the model after ``method_name`` ran with ``seed``."""
        return {"kind": "unlearned", "vanilla": cache_key(self.vanilla_payload(data)),
                "data": data.content_hash(), "domain": data.domain, "method": method_name,
                "method_class": f"{method_class.__module__}.{method_class.__qualname__}",
                "method_code": code_fingerprint(method_class),
                "config": dataclasses.asdict(config), "seed": seed,
                "ood_data": records_hash(self.general_text), "versions": library_versions(),
                # Curves are part of the entry; a model without them stays under its old key.
                **({"curve": {"every": self.settings.curve_every,
                              "criterion": self.settings.criterion}}
                   if self.settings.curve_every else {})}

    def load_unlearned(self, data: DomainData, method_name: str,
                       method_class: type[UnlearningMethod], config: Any,
                       seed: int) -> ModelHandle:
        """Load (or build, then cache) the model after ``method_name`` ran on it with
        ``seed`` (the vanilla model it starts from is the same for every seed)."""
        payload = self.unlearned_payload(data, method_name, method_class, config, seed)
        built: dict[str, Any] = {}

        def build(folder: Path) -> None:
            built.update(self._build_unlearned(data, method_name, method_class, config, seed,
                                               folder))

        path, _ = self.cache.get_or_build(
            "unlearned", payload, build,
            f"the model unlearned by {method_name} ({data.domain}, seed {seed})")
        handle = built.pop("handle", None)
        if handle is None:
            handle = self.load_vanilla(data)
            self.prepare_trainable(handle, seed)
            put_tensors(handle.model, load_tensors(path / "weights.safetensors"),
                        f"cache entry {path}")
            handle.model.eval()
        handle.cache_key = cache_key(payload)
        return handle

    # --- relearning attack ------------------------------------------------------------------

    def attack_settings(self, data: DomainData) -> dict[str, Any]:
        """The attack of --unlearn-attack, with lr 'auto' resolved to the injection lr."""
        import math

        attack = dict(self.settings.attack)
        if math.isnan(attack["lr"]):
            if self.spec.is_tiny:
                attack["lr"] = TINY_ATTACK_LR
            else:
                attack["lr"] = (self.injection.lora_privacy if data.domain == "privacy"
                                else self.injection.lora_copyright).lr
        return {"steps": int(attack["steps"]), "fraction": attack["fraction"],
                "lr": attack["lr"], "batch_size": ATTACK_BATCH_SIZE}

    def relearned_payload(self, data: DomainData, unlearned_key: str,
                          seed: int) -> dict[str, Any]:
        return {"kind": "relearned", "unlearned": unlearned_key, "data": data.content_hash(),
                "domain": data.domain, "attack": self.attack_settings(data), "seed": seed,
                "versions": library_versions()}

    def load_relearned(self, data: DomainData, load_unlearned: Callable[[], ModelHandle],
                       unlearned_key: str, seed: int) -> ModelHandle:
        """The unlearned model after the relearning attack: fine-tuned with the answer NLL
        for ``steps`` optimizer steps on a seeded ``fraction`` of the unlearn train records
        (built once, then cached). The unlearn val items, which it never saw, are then
        tested again: what comes back was only hidden, not removed."""
        payload = self.relearned_payload(data, unlearned_key, seed)
        attack = payload["attack"]
        built: dict[str, ModelHandle] = {}

        def build(folder: Path) -> None:
            import random

            handle = load_unlearned()
            self.prepare_trainable(handle, seed)
            records = list(data.splits["unlearn_train"])
            chosen = random.Random(seed).sample(
                records, max(1, math.ceil(attack["fraction"] * len(records))))
            encoded = encode_all(handle.tokenizer, chosen, MAX_LENGTH, "attack")
            # Cycled to exactly ``steps`` batches: one epoch, no shuffling, constant lr.
            examples = [encoded[i % len(encoded)]
                        for i in range(attack["steps"] * attack["batch_size"])]
            settings = TrainSettings(lr=attack["lr"], epochs=1, batch_size=attack["batch_size"],
                                     grad_accum=1, warmup_ratio=0.0, scheduler="constant",
                                     micro_batch_size=attack["batch_size"], shuffle=False)
            pad = pad_token_id(handle.tokenizer)
            model = handle.model
            log = Trainer(model, examples, lambda batch: answer_nll(model, batch, pad), settings,
                          seed, f"relearn {data.domain}", self.progress).run()
            model.eval()
            save_tensors(folder / "weights.safetensors", get_tensors(model, handle.trainable))
            (folder / "method_log.json").write_text(json.dumps(
                {"attack": attack, "records": len(chosen), "train": log.to_dict()}, indent=1))
            built["handle"] = handle

        path, _ = self.cache.get_or_build(
            "unlearned", payload, build,
            f"the model {unlearned_key[:12]} after the relearning attack ({data.domain}, "
            f"seed {seed})")
        handle = built.pop("handle", None)
        if handle is None:
            handle = load_unlearned()
            self.prepare_trainable(handle, seed)
            put_tensors(handle.model, load_tensors(path / "weights.safetensors"),
                        f"cache entry {path}")
            handle.model.eval()
        handle.cache_key = cache_key(payload)
        return handle

    def _build_unlearned(self, data: DomainData, method_name: str,
                         method_class: type[UnlearningMethod], config: Any, seed: int,
                         folder: Path) -> dict[str, Any]:
        self._check_fsdp_compatible(method_name, method_class)
        handle = self.load_vanilla(data)
        self.prepare_trainable(handle, seed)
        context = self.unlearn_context(data, handle, seed)
        curve: list[dict[str, float]] = []
        if self.settings.curve_every:
            context.after_step = self._curve_recorder(data, handle, curve)
        self.progress(f"unlearn {data.domain}: {method_name} (seed {seed})")
        result = method_class(config).unlearn(context)
        if self.settings.curve_every:
            steps = (result.log.get("train") or {}).get("steps")
            if curve and steps is not None and curve[-1]["step"] != steps:
                context.after_step(-steps)  # the end of training, off the N-step grid
            result.log["curve"] = curve
        handle.model = result.model
        handle.model.eval()
        save_tensors(folder / "weights.safetensors", get_tensors(handle.model, handle.trainable))
        (folder / "method_config.json").write_text(
            json.dumps({"method": method_name, "config": dataclasses.asdict(config)}, indent=1))
        (folder / "method_log.json").write_text(json.dumps(result.log, indent=1, default=str))
        for name, artifact in result.artifacts.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in RESERVED_FILES:
                raise UnlearnError(f"method {method_name!r} returned an artifact named {name!r}; "
                                   "names are lower-case letters, digits and underscores, and "
                                   f"not one of {', '.join(sorted(RESERVED_FILES))}")
            (folder / f"{name}.json").write_text(json.dumps(artifact, indent=1, default=str))
        return {"handle": handle}

    @staticmethod
    def _check_fsdp_compatible(method_name: str, method_class: type[UnlearningMethod]) -> None:
        from .distributed import world

        group = world()
        if group is not None and group.fsdp is not None and not method_class.fsdp_compatible:
            raise UnlearnError(
                f"method {method_name!r} cannot train sharded (accelerate launch with FSDP): "
                "under FSDP every forward pass communicates with every process, so a method "
                "must run the model the same number of times for any batch, and its class "
                "declares this with fsdp_compatible = True. Build it with a plain multi-GPU "
                "config (accelerate launch --multi_gpu) or in one process.")

    def _curve_recorder(self, data: DomainData, handle: ModelHandle,
                        curve: list[dict[str, float]]) -> Callable[[int], None]:
        """A Trainer ``after_step`` that scores the val items every --unlearn-curve-every
        steps (a negative step: score now, at that step). Scoring runs in inference mode
        and puts the model back in its mode, so the training itself is unchanged."""
        from .scoring import perplexity

        every = self.settings.curve_every
        threshold = self.settings.recall_threshold
        scopes = {"unlearn": data.splits["unlearn_val"], "retention": data.splits["retention_val"]}
        encoded = {scope: encode_all(handle.tokenizer, records, MAX_LENGTH, f"{scope} val")
                   for scope, records in scopes.items()}

        def record(step: int) -> None:
            if step >= 0 and step % every:
                return
            point: dict[str, float] = {"step": abs(step)}
            for scope, items in encoded.items():
                scores = score(handle.model, items, pad_token_id(handle.tokenizer))
                # The share of item tests that would pass, counted as the report counts it.
                wanted = scope != "unlearn"
                passing = sum(each.recalled(threshold) == wanted for each in scores)
                point[f"{scope}_success"] = passing / len(scores)
                point[f"{scope}_ppl"] = perplexity([each.mean_logprob for each in scores])
            curve.append(point)
            self.progress(f"curve {data.domain}: step {abs(step)} unlearn success "
                          f"{point['unlearn_success']:.3f} retention success "
                          f"{point['retention_success']:.3f}")

        return record

    def unlearn_context(self, data: DomainData, handle: ModelHandle, seed: int,
                        ) -> UnlearnContext:
        """What a method gets: the model, its trainable tensors, the domain's splits."""
        return UnlearnContext(
            model=handle.model, tokenizer=handle.tokenizer,
            forget=list(data.splits["unlearn_train"]), retain=list(data.splits["retention_train"]),
            general=self.general_text, seed=seed, device=self.device,
            trainable=list(handle.trainable), model_family=self.spec.family,
            domain=data.domain, max_length=MAX_LENGTH, progress=self.progress,
            forget_val=list(data.splits["unlearn_val"]),
            retain_val=list(data.splits["retention_val"]))

    def prepare_trainable(self, handle: ModelHandle, seed: int) -> None:
        """A model without injected LoRA (inject=never) gets a fresh adapter to train."""
        if not handle.trainable:
            import torch

            torch.manual_seed(seed)
            handle.model = attach_lora(handle.model)
            handle.trainable = lora_tensor_names(handle.model)
        set_trainable(handle.model, handle.trainable)
