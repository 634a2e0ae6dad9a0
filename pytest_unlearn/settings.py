"""Command-line options and ini keys of the plugin, parsed and checked before any test runs.

Nothing heavy is imported here: this module is loaded by every pytest run.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .errors import UnlearnError

DOMAINS = ("privacy", "copyright")
DEVICES = ("auto", "cpu", "cuda", "mps", "balanced")
DTYPES = ("auto", "float32", "bfloat16", "float16")
INJECT_MODES = ("auto", "never")

# Short names for the models of the paper; anything else is a hub id or a local path.
MODEL_ALIASES: dict[str, str] = {
    "qwen1.5-7b": "Qwen/Qwen1.5-7B-Chat",
    "llama2-7b": "meta-llama/Llama-2-7b-chat-hf",
}
TINY_MODEL = "tiny"
BUILTIN_DATA = "builtin"
KNOWUNDO_HUB_ID = "zjunlp/KnowUnDo"
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Option:
    """One plugin option: its flags, ini key, default and help text."""

    dest: str
    flags: tuple[str, ...]
    default: str
    help: str
    ini_type: str = "string"


OPTIONS: tuple[Option, ...] = (
    Option("unlearn_method", ("--unlearn-method",), "none",
           "unlearning method(s), comma-separated; 'none' is the vanilla model, 'all' every "
           "registered method, 'memflex+controls' MemFlex and its three ablation controls"),
    Option("unlearn_model", ("--model", "--unlearn-model"), TINY_MODEL,
           "model: alias (" + ", ".join(MODEL_ALIASES) + "), hub id, local folder, "
           "local .gguf file, or 'tiny'"),
    Option("unlearn_data", ("--unlearn-data",), BUILTIN_DATA,
           f"KnowUnDo data: hub id ({KNOWUNDO_HUB_ID}), local folder with "
           "{unlearn,retention}_{train,val}.json, or 'builtin'"),
    Option("unlearn_ood_data", ("--unlearn-ood-data",), BUILTIN_DATA,
           "out-of-distribution retain text for the *_ood methods: 'builtin' (general text "
           "the plugin writes itself) or a JSON/JSONL file of {\"text\", \"labels\"} records"),
    Option("unlearn_cache_dir", ("--unlearn-cache-dir",), "",
           "where built models are cached (default: $XDG_CACHE_HOME/pytest-unlearn)"),
    Option("unlearn_device", ("--unlearn-device",), "auto",
           "device: " + ", ".join(DEVICES) + " (balanced: a pretrained model spread over "
           "every visible GPU with accelerate's device_map)"),
    Option("unlearn_worker_gpus", ("--unlearn-worker-gpus",), "auto",
           "under pytest-xdist, give worker gwK the (K mod G)-th GPU via CUDA_VISIBLE_DEVICES: "
           "'auto' (the visible GPUs), 'off', or GPU ids such as 0,1,2,3"),
    Option("unlearn_gradient_checkpointing", ("--unlearn-gradient-checkpointing",), "auto",
           "recompute activations in the backward pass to save memory when training a "
           "pretrained model: auto (on for a pretrained model on a GPU), on, off"),
    Option("unlearn_dtype", ("--unlearn-dtype",), "auto",
           "dtype: " + ", ".join(DTYPES) + " (auto: float32 on CPU, bfloat16 on GPU)"),
    Option("unlearn_seed", ("--unlearn-seed",), "0", "random seed of injection and unlearning"),
    Option("unlearn_seeds", ("--unlearn-seeds",), "1",
           "run the unlearning of each method under N seeds (--unlearn-seed .. +N-1; the "
           "injected model is shared): one test per item and seed, metrics as means with "
           "bootstrap intervals"),
    Option("unlearn_criterion", ("--unlearn-criterion",), "exact",
           "when an answer counts as recalled: 'exact' (every answer token is the argmax) "
           "or 'token>=T' (token accuracy at least T, 0 < T <= 1)"),
    Option("unlearn_prompts", ("--unlearn-prompts",), "plain",
           "prompt variants the item tests ask under, comma-separated: plain (the question "
           "alone), helpful (paper Finding 2's 'You are a helpful assistant...'), direct (the "
           "reference's privacy- or copyright-sensitive prompt); one test per variant"),
    Option("unlearn_max_new_tokens", ("--unlearn-max-new-tokens",), "64",
           "cap on the greedy generation per item, for ROUGE-L (each generation is as long as "
           "its reference answer, up to this); 0 turns generation off"),
    Option("unlearn_score_batch_size", ("--unlearn-score-batch-size",), "32",
           "items per batch when scoring and generating (lower it if scoring runs out of "
           "memory; the scores do not depend on it)"),
    Option("unlearn_inject", ("--unlearn-inject",), "auto",
           "knowledge injection before unlearning: 'auto' (inject, cached) or 'never' "
           "(the model already holds the knowledge, e.g. a release candidate)"),
    Option("unlearn_leak_samples", ("--unlearn-leak-samples",), "4",
           "leak tests: besides the greedy generation, this many sampled generations "
           "(temperature 1, seeded) per unlearn item must not contain its sensitive strings"),
    Option("unlearn_attack", ("--unlearn-attack",), "steps=8,fraction=0.1,lr=auto",
           "relearning attack of the tests marked 'attack': fine-tune the unlearned model "
           "for STEPS optimizer steps (batch 8) on FRACTION of the unlearn train records at "
           "LR (auto: 1e-4 for the tiny model, the LoRA injection lr otherwise), then test the "
           "unlearn val items again"),
    Option("unlearn_json", ("--unlearn-json",), "", "write the metrics report as JSON to this path"),
    Option("unlearn_curve_every", ("--unlearn-curve-every",), "0",
           "training curves: score the val items every N optimizer steps while a method "
           "unlearns (paper Figure 4); 0 turns them off"),
    Option("unlearn_plots", ("--unlearn-plots",), "",
           "write PNG plots into this folder: each method's training curve (with "
           "--unlearn-curve-every) and a bar chart of the final successes"),
    Option("unlearn_config", ("--unlearn-config",), "",
           "YAML file with one section per method that overrides its config fields"),
    Option("unlearn_general_tasks", ("--unlearn-general-tasks",), "auto",
           "general tasks of suites/general, comma-separated lm-eval names; 'builtin' (offline "
           "tasks the plugin writes), 'paper' (mmlu, arc_challenge, truthfulqa_mc2, "
           "social_iqa, race), or 'auto' (builtin for the tiny model, paper otherwise)"),
    Option("unlearn_general_limit", ("--unlearn-general-limit",), "",
           "at most this many documents per general task (default: all)"),
    Option("unlearn_reference", ("--unlearn-reference",), "",
           "base model (path or hub id) that relative general-task thresholds compare "
           "against, for a model tested as it is (--unlearn-inject=never)"),
    Option("unlearn_gate", ("--unlearn-gate",), "",
           "YAML release gate: minimum successes, maximum drops and perplexities; it decides "
           "the exit status"),
    Option("unlearn_save", ("--unlearn-save",), "",
           "save this run's per-item outcomes and metrics as a named baseline"),
    Option("unlearn_compare", ("--unlearn-compare",), "",
           "compare with a saved baseline: items newly leaked (Unlearn Scope) or newly lost "
           "(Retention Scope)"),
    Option("unlearn_trust_remote_code", ("--unlearn-trust-remote-code",), "false",
           "allow a hub model to run its own code (off unless you pass this)", "bool"),
    Option("unlearn_rebuild", ("--unlearn-rebuild",), "false",
           "ignore cached models and build them again", "bool"),
    Option("unlearn_build_only", ("--unlearn-build-only",), "false",
           "build (or find in the cache) every model the selected tests need and compute what "
           "they read (item scores, generations, general-task scores), then run no test; "
           "under accelerate launch or torchrun the processes do it together, data parallel",
           "bool"),
)


@dataclass(frozen=True)
class Settings:
    """The resolved, validated settings of one run."""

    methods: tuple[str, ...]
    model: str
    data: str
    ood_data: str
    cache_dir: Path
    device: str
    worker_gpus: str
    gradient_checkpointing: str
    dtype: str
    seed: int
    seeds: int
    prompts: tuple[str, ...]
    criterion: str
    max_new_tokens: int
    score_batch_size: int
    inject: str
    leak_samples: int
    attack: dict[str, float]
    json_path: Path | None
    curve_every: int
    plots_dir: Path | None
    config_path: Path | None
    general_tasks: str
    general_limit: int | None
    reference: str | None
    gate_path: Path | None
    save_baseline: str | None
    compare_baseline: str | None
    trust_remote_code: bool
    rebuild: bool
    build_only: bool

    @property
    def unlearn_seeds(self) -> list[int]:
        """The seeds of the unlearning runs: --unlearn-seed and the next --unlearn-seeds - 1."""
        return [self.seed + offset for offset in range(self.seeds)]

    @property
    def recall_threshold(self) -> float:
        """Token accuracy an answer needs to count as recalled (1.0 for 'exact')."""
        return parse_criterion(self.criterion)

    def header_lines(self) -> list[str]:
        model = self.model
        if model in MODEL_ALIASES:
            model = f"{model} ({MODEL_ALIASES[model]})"
        return [
            f"unlearn: methods={','.join(self.methods)} model={model} data={self.data}",
            f"unlearn: criterion={self.criterion} inject={self.inject} seed={self.seed} "
            f"seeds={self.seeds} prompts={','.join(self.prompts)} "
            f"device={self.device} dtype={self.dtype} cache={self.cache_dir}",
            f"unlearn: general_tasks={self.general_tasks} limit={self.general_limit or 'all'} "
            f"reference={self.reference or '-'} gate={self.gate_path or '-'} "
            f"save={self.save_baseline or '-'} compare={self.compare_baseline or '-'}",
        ]


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("unlearn", "LLM unlearning (KnowUnDo)")
    for option in OPTIONS:
        if option.ini_type == "bool":
            group.addoption(*option.flags, dest=option.dest, action="store_true", default=None,
                            help=f"{option.help} (ini: {option.dest})")
        else:
            default = f"default: {option.default}; " if option.default else ""
            group.addoption(*option.flags, dest=option.dest, default=None, metavar="VALUE",
                            help=f"{option.help} ({default}ini: {option.dest})")
        parser.addini(option.dest, option.help, type=option.ini_type if option.ini_type == "bool"
                      else "string", default=_ini_default(option))


def _ini_default(option: Option) -> Any:
    return option.default.lower() == "true" if option.ini_type == "bool" else option.default


def resolve(config: pytest.Config) -> Settings:
    """Read every option (command line first, then ini, then default) and check it."""
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        cli_value = config.getoption(option.dest)
        if cli_value is not None:
            raw[option.dest], sources[option.dest] = cli_value, "command line"
        else:
            raw[option.dest], sources[option.dest] = config.getini(option.dest), "ini"
    rootdir = Path(str(config.rootpath))
    try:
        return _build(raw, sources, rootdir)
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None


def settings_for_script(**values: Any) -> Settings:
    """Settings outside pytest (benchmark scripts): the option defaults, then ``values``
    keyed by option dest (``unlearn_model="tiny"``), checked like the options."""
    raw = {option.dest: _ini_default(option) for option in OPTIONS}
    unknown = set(values) - set(raw)
    if unknown:
        raise UnlearnError(f"unknown settings {sorted(unknown)}; they are: {', '.join(raw)}")
    raw.update(values)
    return _build(raw, {key: "script" for key in raw}, Path.cwd())


def _build(raw: dict[str, Any], sources: dict[str, str], rootdir: Path) -> Settings:
    methods = tuple(name.strip() for name in str(raw["unlearn_method"]).split(",") if name.strip())
    if not methods:
        raise UnlearnError("--unlearn-method is empty: name at least one method, e.g. 'none' or "
                           "'gradient_ascent'")
    parse_criterion(str(raw["unlearn_criterion"]))
    return Settings(
        methods=methods,
        model=check_model_spec(str(raw["unlearn_model"]).strip()),
        data=check_data_spec(str(raw["unlearn_data"]).strip()),
        ood_data=_ood_data(str(raw["unlearn_ood_data"]).strip()),
        cache_dir=_cache_dir(str(raw["unlearn_cache_dir"]).strip(), sources, rootdir),
        device=_choice("--unlearn-device", str(raw["unlearn_device"]), DEVICES),
        worker_gpus=str(raw["unlearn_worker_gpus"]).strip() or "auto",
        gradient_checkpointing=_choice("--unlearn-gradient-checkpointing",
                                       str(raw["unlearn_gradient_checkpointing"]),
                                       ("auto", "on", "off")),
        dtype=_choice("--unlearn-dtype", str(raw["unlearn_dtype"]), DTYPES),
        seed=_non_negative("--unlearn-seed", str(raw["unlearn_seed"])),
        seeds=_positive("--unlearn-seeds", str(raw["unlearn_seeds"])),
        prompts=_prompts(str(raw["unlearn_prompts"])),
        criterion=str(raw["unlearn_criterion"]).strip(),
        max_new_tokens=_non_negative("--unlearn-max-new-tokens",
                                     str(raw["unlearn_max_new_tokens"])),
        score_batch_size=_positive("--unlearn-score-batch-size",
                                   str(raw["unlearn_score_batch_size"])),
        inject=_choice("--unlearn-inject", str(raw["unlearn_inject"]), INJECT_MODES),
        leak_samples=_non_negative("--unlearn-leak-samples", str(raw["unlearn_leak_samples"])),
        attack=_attack(str(raw["unlearn_attack"])),
        json_path=Path(raw["unlearn_json"]).expanduser() if raw["unlearn_json"] else None,
        curve_every=_non_negative("--unlearn-curve-every", str(raw["unlearn_curve_every"])),
        plots_dir=_plots_dir(str(raw["unlearn_plots"])),
        config_path=_existing_file("--unlearn-config", str(raw["unlearn_config"])),
        general_tasks=str(raw["unlearn_general_tasks"]).strip() or "auto",
        general_limit=(_positive("--unlearn-general-limit", str(raw["unlearn_general_limit"]))
                       if str(raw["unlearn_general_limit"]).strip() else None),
        reference=(check_model_spec(str(raw["unlearn_reference"]).strip())
                   if str(raw["unlearn_reference"]).strip() else None),
        gate_path=_existing_file("--unlearn-gate", str(raw["unlearn_gate"])),
        save_baseline=_baseline_name("--unlearn-save", str(raw["unlearn_save"])),
        compare_baseline=_baseline_name("--unlearn-compare", str(raw["unlearn_compare"])),
        trust_remote_code=bool(raw["unlearn_trust_remote_code"]),
        rebuild=bool(raw["unlearn_rebuild"]),
        build_only=bool(raw["unlearn_build_only"]),
    )


def _plots_dir(text: str) -> Path | None:
    """--unlearn-plots needs matplotlib, an optional extra: say so before any model is built."""
    if not text.strip():
        return None
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UnlearnError(f"--unlearn-plots={text}: drawing plots needs matplotlib, which is "
                           "not installed; install it with: pip install 'pytest-unlearn[plots]'")
    return Path(text).expanduser()


def _attack(text: str) -> dict[str, float]:
    """'steps=8,fraction=0.1,lr=auto' -> {"steps": 8, "fraction": 0.1, "lr": nan (auto)}."""
    import math

    values: dict[str, float] = {"steps": 8, "fraction": 0.1, "lr": math.nan}
    usage = ("write it as steps=K,fraction=F,lr=LR (any subset), e.g. "
             "--unlearn-attack=steps=16,fraction=0.2,lr=1e-4")
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in values or not value.strip():
            raise UnlearnError(f"--unlearn-attack={text!r}: {part!r} is not one of steps=, "
                               f"fraction=, lr=; {usage}")
        if key == "lr" and value.strip() == "auto":
            continue
        try:
            number = int(value) if key == "steps" else float(value)
        except ValueError:
            raise UnlearnError(f"--unlearn-attack={text!r}: {key} must be a number, got "
                               f"{value!r}; {usage}") from None
        if number <= 0 or (key == "fraction" and number > 1):
            raise UnlearnError(f"--unlearn-attack={text!r}: {key}={value} is out of range "
                               "(steps and lr > 0, 0 < fraction <= 1)")
        values[key] = number
    return values


def _prompts(text: str) -> tuple[str, ...]:
    from .prompts import PROMPTS

    chosen = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not chosen:
        raise UnlearnError(f"--unlearn-prompts is empty: name one or more of {', '.join(PROMPTS)}")
    for name in chosen:
        _choice("--unlearn-prompts", name, PROMPTS)
    return chosen


def parse_criterion(text: str) -> float:
    """'exact' -> 1.0; 'token>=0.9' -> 0.9. Anything else is an error."""
    text = text.strip()
    if text == "exact":
        return 1.0
    match = re.fullmatch(r"token>=([0-9]*\.?[0-9]+)", text)
    if match and 0.0 < float(match.group(1)) <= 1.0:
        return float(match.group(1))
    raise UnlearnError(
        f"--unlearn-criterion={text!r} is not a criterion: use 'exact' (every answer token is "
        "the model's argmax) or 'token>=T' with 0 < T <= 1, e.g. 'token>=0.9'")


def check_model_spec(spec: str) -> str:
    """Accept an alias, 'tiny', an existing folder or .gguf file, or an owner/name hub id."""
    if spec in MODEL_ALIASES or spec == TINY_MODEL:
        return spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return spec
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return spec
        raise UnlearnError(
            f"--model={spec!r} is a file but not a .gguf file: pass a model folder (with "
            "config.json), a .gguf file, a hub id, or one of: " + _model_choices())
    if path.suffix.lower() == ".gguf":
        raise UnlearnError(f"--model={spec!r}: no such .gguf file (looked in {Path.cwd()})")
    if _HUB_ID.match(spec) and not spec.startswith("."):
        return spec
    raise UnlearnError(
        f"unknown model {spec!r}{_did_you_mean(spec, [*MODEL_ALIASES, TINY_MODEL])}: it is not an "
        "alias, not a local folder or .gguf file, and not a hub id of the form owner/name. "
        "Available aliases: " + _model_choices())


def check_data_spec(spec: str) -> str:
    """Accept 'builtin', an existing folder, or an owner/name hub id."""
    if spec == BUILTIN_DATA:
        return spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return spec
    if path.exists():
        raise UnlearnError(
            f"--unlearn-data={spec!r} is a file; pass the folder that holds "
            "unlearn_train.json, unlearn_val.json, retention_train.json and retention_val.json")
    if _HUB_ID.match(spec) and not spec.startswith("."):
        return spec
    raise UnlearnError(
        f"unknown dataset {spec!r}{_did_you_mean(spec, [BUILTIN_DATA, KNOWUNDO_HUB_ID])}: no such "
        f"folder (looked in {Path.cwd()}) and not a hub id of the form owner/name. Available: "
        f"'{BUILTIN_DATA}' (data the plugin writes itself), '{KNOWUNDO_HUB_ID}' (the hub), or a "
        "folder with {unlearn,retention}_{train,val}.json")


def _ood_data(text: str) -> str:
    if text == BUILTIN_DATA or Path(text).expanduser().is_file():
        return text
    raise UnlearnError(
        f"--unlearn-ood-data={text!r}: no such file (looked in {Path.cwd()}). Use "
        f"'{BUILTIN_DATA}' or a JSON array / JSONL file of {{\"text\", \"labels\"}} records.")


def _model_choices() -> str:
    aliases = ", ".join(f"{alias} ({hub_id})" for alias, hub_id in MODEL_ALIASES.items())
    return f"{aliases}, {TINY_MODEL} (a small model built in code, for CPU runs)"


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _choice(flag: str, value: str, choices: tuple[str, ...]) -> str:
    value = value.strip()
    if value not in choices:
        raise UnlearnError(f"{flag}={value!r}{_did_you_mean(value, list(choices))} is not one of: "
                           + ", ".join(choices))
    return value


def _non_negative(flag: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UnlearnError(f"{flag}={text!r} is not an integer") from None
    if value < 0:
        raise UnlearnError(f"{flag}={value} must be zero or positive")
    return value


def _positive(flag: str, text: str) -> int:
    value = _non_negative(flag, text)
    if value == 0:
        raise UnlearnError(f"{flag}=0 must be at least 1")
    return value


def _baseline_name(flag: str, text: str) -> str | None:
    """Baseline names become file names, so they are kept to a safe alphabet."""
    text = text.strip()
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", text):
        raise UnlearnError(f"{flag}={text!r}: a baseline name is 1-64 letters, digits, '_', '.' "
                           "or '-', starting with a letter or digit")
    return text


def _existing_file(flag: str, text: str) -> Path | None:
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise UnlearnError(f"{flag}={text!r}: no such file (looked in {Path.cwd()})")
    return path


def _cache_dir(text: str, sources: dict[str, str], rootdir: Path) -> Path:
    if not text:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "pytest-unlearn"
    path = Path(text).expanduser()
    # An ini value is relative to the project, like pytest's own cache_dir.
    if not path.is_absolute() and sources.get("unlearn_cache_dir") == "ini":
        path = rootdir / path
    return path.resolve()
