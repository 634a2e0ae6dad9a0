"""Builds the models that the fixtures hand out, through the cache.

vanilla   = the starting model with the domain's knowledge injected (``injection.py``):
            full training for the tiny model, a LoRA adapter for pretrained ones.
unlearned = the vanilla model after one method ran on the domain's train splits.
relearned = an unlearned model after the relearning attack (``attack.py``).

Each is cached under a key of everything that determines it (its payload); a second
identical run loads instead of training. An entry holds the trained tensors only
(``weights.safetensors``), put back into the model it started from when it is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .attack import attack_settings, relearn
from .cache import ModelCache, cache_key, library_versions, load_tensors, save_tensors
from .clipping import keyed
from .curves import curve_recorder
from .data import DomainData, Record, load_general_text, records_hash
from .distributed import check_fsdp_compatible
from .errors import UnlearnError
from .in_memory import InMemoryModel
from .injection import InjectionConfig, inject, warn_if_weak
from .method import MethodClass, UnlearnContext, code_fingerprint
from .models import (
    ModelHandle,
    ModelSpec,
    all_tensor_names,
    attach_lora,
    enable_gradient_checkpointing,
    get_tensors,
    load_pretrained,
    lora_tensor_names,
    put_tensors,
    resolve_device,
    resolve_dtype,
    set_trainable,
)
from .settings import Settings
from .tiny import build_tiny_model, tiny_from_files, tokenizer_texts, train_tiny_tokenizer
from .vocabulary import MAX_LENGTH

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

RESERVED_FILES = {"method_log", "method_config", "manifest", "injection", "model_config"}


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        cache: ModelCache,
        progress: Callable[[str], None],
        injection: InjectionConfig | None = None,
        given: InMemoryModel | None = None,
    ) -> None:
        self.settings = settings
        self.cache = cache
        self.progress = progress
        # A model handed over in memory (the Python API) replaces --unlearn-model.
        self.given = given
        self.spec = given.spec if given is not None else ModelSpec.parse(settings.model)
        if given is not None:
            self.device, self.dtype = given.device, given.dtype
        else:
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

    @property
    def tested_as_it_is(self) -> bool:
        """The vanilla model is the pretrained one, loaded as it is (no injection)."""
        return not self.spec.is_tiny and self.settings.inject == "never"

    # --- vanilla ---------------------------------------------------------------------------
    def vanilla_payload(self, data: DomainData) -> dict[str, Any]:
        """Everything that determines the vanilla model. A pretrained model tested as it is
        (--unlearn-inject=never) depends on no data, domain or seed, so both domains and
        every seed share its key, and what is computed from it alone (general-task scores)
        is computed once."""
        payload = {
            "kind": "vanilla",
            "model": self.given.fingerprint()
            if self.given is not None
            else self.spec.fingerprint(self.cache.file_hashes),
            "inject": self.settings.inject,
            "dtype": str(self.dtype),
            "versions": library_versions(),
        }
        if self.tested_as_it_is:
            return payload
        return {
            **payload,
            "data": data.content_hash(),
            "domain": data.domain,
            "injection": self.injection.as_payload(),
            "seed": self.settings.seed,
        }

    def load_vanilla(self, data: DomainData) -> ModelHandle:
        payload = self.vanilla_payload(data)
        if self.tested_as_it_is:
            model, tokenizer = self._load_base()
            return ModelHandle(model, tokenizer, self.spec, [], cache_key(payload))
        return self.load_injected(data, payload, data.all_records())

    def load_injected(
        self, data: DomainData, payload: dict[str, Any], learns: list[Record]
    ) -> ModelHandle:
        """The starting model after it learned ``learns``, cached under ``payload``."""
        what = f"the {payload['kind']} {self.spec.requested} model of {data.domain}"
        path, _ = self.cache.get_or_build(
            "vanilla", payload, lambda folder: self.build_injected(data, learns, folder), what
        )
        warn_if_weak(json.loads((path / "injection.json").read_text()), data.domain, self.progress)
        tensors = load_tensors(path / "weights.safetensors")
        if self.spec.is_tiny:
            model, tokenizer = tiny_from_files(path)
            model = model.to(self.device, self.dtype)
        else:
            base, tokenizer = self._load_base()
            model = attach_lora(base)
        put_tensors(model, tensors, f"cache entry {path}")
        model.eval()
        return ModelHandle(model, tokenizer, self.spec, sorted(tensors), cache_key(payload))

    def build_injected(self, data: DomainData, records: list[Record], folder: Path) -> None:
        """Train the starting model on ``records`` (the oracle's are fewer, ``oracle.py``)."""
        if self.spec.is_tiny:
            self.progress(
                f"building the tiny model for {data.domain} on {self.device}, "
                f"{str(self.dtype).removeprefix('torch.')}"
            )
            # Every record (holdout too: vanilla and oracle share it), the general text.
            every = [*data.all_records(), *data.holdout, *load_general_text()]
            tokenizer = train_tiny_tokenizer(tokenizer_texts(every))
            model = build_tiny_model(tokenizer, self.settings.seed).to(self.device, self.dtype)
            trainable = all_tensor_names(model)
            tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
            (folder / "model_config.json").write_text(model.config.to_json_string())
            if self.injection.tiny_learns_general_text:
                records = records + load_general_text()
        else:
            base, tokenizer = self._load_base()
            model = attach_lora(base)
            trainable = lora_tensor_names(model)
        log: dict[str, Any] = {"injected": False}
        if self.settings.inject != "never":
            settings, target = self.injection.training(self.spec.is_tiny, data.domain)
            log = inject(
                model,
                tokenizer,
                trainable,
                records,
                settings,
                target,
                self.settings.seed,
                data.domain,
                self.progress,
                data.record_scopes(),
            )
        save_tensors(folder / "weights.safetensors", get_tensors(model, trainable))
        (folder / "injection.json").write_text(json.dumps(log, indent=1))

    def load_reference(self) -> ModelHandle:
        """The --unlearn-reference model, as it is (no injection, no adapter)."""
        spec = ModelSpec.parse(str(self.settings.reference))
        self.progress(f"loading reference {spec.requested} ({spec.location})")
        if spec.is_tiny:
            raise UnlearnError(
                "--unlearn-reference=tiny: the tiny model is built per domain; "
                "name a model folder, .gguf file or hub id"
            )
        model, tokenizer = load_pretrained(
            spec, self.device, self.dtype, self.settings.trust_remote_code, cache=self.cache
        )
        return ModelHandle(model, tokenizer, spec, [], f"reference:{spec.requested}")

    def _load_base(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        choice = self.settings.gradient_checkpointing
        checkpointing = choice == "on" or (choice == "auto" and self.device.type == "cuda")
        place = "balanced GPUs" if self.settings.device == "balanced" else str(self.device)
        self.progress(
            f"{'copying' if self.given else 'loading'} {self.spec.requested} "
            f"({'in memory' if self.given else self.spec.location}) on {place}"
            f", {str(self.dtype).removeprefix('torch.')}"
            f"{', gradient checkpointing in training' if checkpointing else ''}"
        )
        if self.given is not None:
            model, tokenizer = self.given.copy()
        else:
            model, tokenizer = load_pretrained(
                self.spec,
                self.device,
                self.dtype,
                self.settings.trust_remote_code,
                balanced=self.settings.device == "balanced",
                cache=self.cache,
            )
        if checkpointing:
            enable_gradient_checkpointing(model)
        return model, tokenizer

    # --- unlearned -------------------------------------------------------------------------

    def unlearned_payload(
        self, data: DomainData, method_name: str, method_class: MethodClass, config: Any, seed: int
    ) -> dict[str, Any]:
        """Everything that determines the model after ``method_name`` ran with ``seed``."""
        return {
            "kind": "unlearned",
            "vanilla": cache_key(self.vanilla_payload(data)),
            "data": data.content_hash(),
            "domain": data.domain,
            "method": method_name,
            "method_class": f"{method_class.__module__}.{method_class.__qualname__}",
            "method_code": code_fingerprint(method_class),
            "config": keyed(dataclasses.asdict(config)),
            "seed": seed,
            "ood_data": records_hash(self.general_text),
            "versions": library_versions(),
            # Curves are part of the entry; a model without them stays under its old key.
            **(
                {
                    "curve": {
                        "every": self.settings.curve_every,
                        "criterion": self.settings.criterion,
                    }
                }
                if self.settings.curve_every
                else {}
            ),
        }

    def load_unlearned(
        self, data: DomainData, method_name: str, method_class: MethodClass, config: Any, seed: int
    ) -> ModelHandle:
        """Load (or build, then cache) the model after ``method_name`` ran on it with
        ``seed`` (the vanilla model it starts from is the same for every seed)."""
        payload = self.unlearned_payload(data, method_name, method_class, config, seed)
        return self._trained(
            payload,
            lambda: self.load_vanilla(data),
            seed,
            lambda handle, folder: self._unlearn(
                data, method_name, method_class, config, seed, handle, folder
            ),
            f"the model unlearned by {method_name} ({data.domain}, seed {seed})",
        )

    def _unlearn(
        self,
        data: DomainData,
        method_name: str,
        method_class: MethodClass,
        config: Any,
        seed: int,
        handle: ModelHandle,
        folder: Path,
    ) -> None:
        check_fsdp_compatible(method_name, method_class.fsdp_compatible)
        context = self.unlearn_context(data, handle, seed)
        curve: list[dict[str, float]] = []
        if self.settings.curve_every:
            context.after_step = curve_recorder(
                data,
                handle,
                self.settings.curve_every,
                self.settings.recall_threshold,
                curve,
                self.progress,
            )
        self.progress(f"unlearn {data.domain}: {method_name} (seed {seed})")
        result = method_class(config).unlearn(context)
        if self.settings.curve_every:
            steps = (result.log.get("train") or {}).get("steps")
            if curve and steps is not None and curve[-1]["step"] != steps:
                context.after_step(-steps)  # type: ignore[misc]  # the end, off the grid
            result.log["curve"] = curve
        handle.model = result.model
        (folder / "method_config.json").write_text(
            json.dumps({"method": method_name, "config": dataclasses.asdict(config)}, indent=1)
        )
        (folder / "method_log.json").write_text(json.dumps(result.log, indent=1, default=str))
        for name, artifact in result.artifacts.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in RESERVED_FILES:
                raise UnlearnError(
                    f"method {method_name!r} returned an artifact named {name!r}; "
                    "names are lower-case letters, digits and underscores, and "
                    f"not one of {', '.join(sorted(RESERVED_FILES))}"
                )
            (folder / f"{name}.json").write_text(json.dumps(artifact, indent=1, default=str))

    # --- after the relearning attack --------------------------------------------------------

    def relearned_payload(self, data: DomainData, unlearned_key: str, seed: int) -> dict[str, Any]:
        injection, _ = self.injection.training(self.spec.is_tiny, data.domain)
        return {
            "kind": "relearned",
            "unlearned": unlearned_key,
            "data": data.content_hash(),
            "domain": data.domain,
            "attack": attack_settings(self.settings.attack, self.spec.is_tiny, injection.lr),
            "seed": seed,
            "versions": library_versions(),
        }

    def load_relearned(
        self,
        data: DomainData,
        load_unlearned: Callable[[], ModelHandle],
        unlearned_key: str,
        seed: int,
    ) -> ModelHandle:
        """The unlearned model after the relearning attack (built once, then cached)."""
        payload = self.relearned_payload(data, unlearned_key, seed)

        def attack(handle: ModelHandle, folder: Path) -> None:
            log = relearn(
                handle.model,
                handle.tokenizer,
                data.splits["unlearn_train"],
                payload["attack"],
                seed,
                data.domain,
                self.progress,
            )
            (folder / "method_log.json").write_text(json.dumps(log, indent=1))

        return self._trained(
            payload,
            load_unlearned,
            seed,
            attack,
            f"the model {unlearned_key[:12]} after the relearning attack "
            f"({data.domain}, seed {seed})",
        )

    # --- shared ------------------------------------------------------------------------------

    def _trained(
        self,
        payload: dict[str, Any],
        load_start: Callable[[], ModelHandle],
        seed: int,
        train: Callable[[ModelHandle, Path], None],
        what: str,
    ) -> ModelHandle:
        """A model that starts from ``load_start()`` and trains its trainable tensors with
        ``train(handle, folder)``, cached under ``payload``: built once (the handle that
        trained is handed out), later loaded by putting the entry's tensors back into the
        model it started from."""
        built: dict[str, ModelHandle] = {}

        def build(folder: Path) -> None:
            handle = load_start()
            self.prepare_trainable(handle, seed)
            train(handle, folder)
            handle.model.eval()
            save_tensors(
                folder / "weights.safetensors", get_tensors(handle.model, handle.trainable)
            )
            built["handle"] = handle

        path, _ = self.cache.get_or_build("unlearned", payload, build, what)
        handle = built.pop("handle", None)
        if handle is None:
            handle = load_start()
            self.prepare_trainable(handle, seed)
            put_tensors(
                handle.model, load_tensors(path / "weights.safetensors"), f"cache entry {path}"
            )
            handle.model.eval()
        handle.cache_key = cache_key(payload)
        return handle

    def unlearn_context(self, data: DomainData, handle: ModelHandle, seed: int) -> UnlearnContext:
        """What a method gets: the model, its trainable tensors, the domain's splits."""
        return UnlearnContext(
            model=handle.model,
            tokenizer=handle.tokenizer,
            forget=list(data.splits["unlearn_train"]),
            retain=list(data.splits["retention_train"]),
            general=self.general_text,
            seed=seed,
            device=self.device,
            trainable=list(handle.trainable),
            model_family=self.spec.family,
            domain=data.domain,
            max_length=MAX_LENGTH,
            progress=self.progress,
            forget_val=list(data.splits["unlearn_val"]),
            retain_val=list(data.splits["retention_val"]),
        )

    def prepare_trainable(self, handle: ModelHandle, seed: int) -> None:
        """A model without injected LoRA (inject=never) gets a fresh adapter to train."""
        if not handle.trainable:
            import torch

            torch.manual_seed(seed)
            handle.model = attach_lora(handle.model)
            handle.trainable = lora_tensor_names(handle.model)
        set_trainable(handle.model, handle.trainable)
