"""Command-line options and ini keys of the plugin, parsed and checked before any test runs.

Nothing heavy is imported here: this module is loaded by every pytest run.
"""

from __future__ import annotations

import difflib
import math
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
GENERAL_TASK_SETS = ("auto", "builtin", "paper")
# torch, numpy and random all take a seed below 2**32.
SEED_LIMIT = 2**32
# Each seed is one more unlearning run of every method and one more test per item.
MAX_SEEDS = 100
# The GPU ids workers.pin_worker_gpu accepts: an index or an nvidia-smi UUID.
_GPU_ID = re.compile(r"\d+|GPU-[0-9a-fA-F-]+")

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


@dataclass(frozen=True)
class Origin:
    """Where the value of one option came from, so that an error message names it as the user
    wrote it: on the command line, as an ini key (and in which file), with ``-o``, as a
    default, or as a keyword of `settings_for_script`."""

    flag: str
    key: str
    source: str = "command line"  # "command line", "ini", "-o", "default" or "script"
    inipath: Path | None = None

    @property
    def place(self) -> str:
        """The option without its value: '--unlearn-seed', 'ini key unlearn_seed in FILE'."""
        if self.source == "ini":
            return f"ini key {self.key} in {self.inipath or 'the ini file'}"
        if self.source == "-o":
            return f"-o {self.key}"
        if self.source == "script":
            return f"setting {self.key}"
        if self.source == "default":
            return f"{self.flag} (the default)"
        return self.flag

    def label(self, value: object, quote: bool = True) -> str:
        """The option with its value: "--unlearn-seed='abc'", "unlearn_seed = 'abc' (ini key
        in FILE)"."""
        shown = repr(value) if quote else str(value)
        if self.source == "ini":
            return f"{self.key} = {shown} (ini key in {self.inipath or 'the ini file'})"
        if self.source == "-o":
            return f"-o {self.key}={shown}"
        if self.source == "script":
            return f"{self.key}={shown}"
        if self.source == "default":
            return f"{self.flag}={shown} (the default)"
        return f"{self.flag}={shown}"


_OPTIONS_BY_DEST = {option.dest: option for option in OPTIONS}


def _origin(dest: str, sources: dict[str, str], inipath: Path | None) -> Origin:
    return Origin(_OPTIONS_BY_DEST[dest].flags[0], dest, sources.get(dest, "default"), inipath)


def resolve(config: pytest.Config) -> Settings:
    """Read every option (command line first, then ini, then default) and check it."""
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    inipath = Path(config.inipath) if config.inipath is not None else None
    overridden = {entry.partition("=")[0].strip()
                  for entry in config.getoption("override_ini", None) or ()}
    for option in OPTIONS:
        cli_value = config.getoption(option.dest)
        if cli_value is not None:
            raw[option.dest], sources[option.dest] = cli_value, "command line"
            continue
        sources[option.dest] = "-o" if option.dest in overridden else "ini"
        try:
            raw[option.dest] = config.getini(option.dest)
        except (ValueError, TypeError, pytest.UsageError) as error:
            # pytest's own message may not say which key, or in which file.
            where = _origin(option.dest, sources, inipath).place
            kind = ("true or false (or yes/no, on/off, 1/0)" if option.ini_type == "bool"
                    else "a string, e.g. " + f'{option.dest} = "{option.default or "VALUE"}"')
            raise pytest.UsageError(f"{where}: {error}; write {kind}") from None
        if sources[option.dest] == "ini" and raw[option.dest] == _ini_default(option):
            sources[option.dest] = "default"
    rootdir = Path(str(config.rootpath))
    try:
        return _build(raw, sources, rootdir, inipath)
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
    sources = {key: "script" if key in values else "default" for key in raw}
    return _build(raw, sources, Path.cwd())


def _build(raw: dict[str, Any], sources: dict[str, str], rootdir: Path,
           inipath: Path | None = None) -> Settings:
    def origin(dest: str) -> Origin:
        return _origin(dest, sources, inipath)

    def text(dest: str) -> str:
        return str(raw[dest]).strip()

    methods = tuple(name.strip() for name in text("unlearn_method").split(",") if name.strip())
    if not methods:
        raise UnlearnError(f"{origin('unlearn_method').place} is empty: name at least one "
                           "method, e.g. 'none' or 'gradient_ascent'")
    parse_criterion(text("unlearn_criterion"), origin("unlearn_criterion"))
    model = check_model_spec(text("unlearn_model"), origin("unlearn_model"))
    inject = _choice(origin("unlearn_inject"), text("unlearn_inject"), INJECT_MODES)
    if model == TINY_MODEL and inject == "never":
        raise UnlearnError(
            f"{origin('unlearn_model').label(model)} with "
            f"{origin('unlearn_inject').label(inject)}: the tiny model is built in code with "
            "random weights and only knows the data after the knowledge injection, so every "
            "test would measure an untrained model. Use --unlearn-inject=auto with the tiny "
            "model, or a pretrained --model (alias, hub id, folder or .gguf file) with "
            "--unlearn-inject=never.")
    seed = _seed(origin("unlearn_seed"), text("unlearn_seed"))
    seeds = _seed_count(origin("unlearn_seeds"), text("unlearn_seeds"))
    if seed + seeds - 1 >= SEED_LIMIT:
        raise UnlearnError(
            f"{origin('unlearn_seeds').label(seeds)} with {origin('unlearn_seed').label(seed)}: "
            f"the last seed, {seed + seeds - 1}, is not below 2**32 = {SEED_LIMIT}; lower "
            "--unlearn-seed or --unlearn-seeds")
    return Settings(
        methods=methods,
        model=model,
        data=check_data_spec(text("unlearn_data"), origin("unlearn_data")),
        ood_data=_ood_data(origin("unlearn_ood_data"), text("unlearn_ood_data")),
        cache_dir=_cache_dir(origin("unlearn_cache_dir"), text("unlearn_cache_dir"), rootdir),
        device=_choice(origin("unlearn_device"), text("unlearn_device"), DEVICES),
        worker_gpus=_worker_gpus(origin("unlearn_worker_gpus"), text("unlearn_worker_gpus")),
        gradient_checkpointing=_choice(origin("unlearn_gradient_checkpointing"),
                                       text("unlearn_gradient_checkpointing"),
                                       ("auto", "on", "off")),
        dtype=_choice(origin("unlearn_dtype"), text("unlearn_dtype"), DTYPES),
        seed=seed,
        seeds=seeds,
        prompts=_prompts(origin("unlearn_prompts"), text("unlearn_prompts")),
        criterion=text("unlearn_criterion"),
        max_new_tokens=_non_negative(origin("unlearn_max_new_tokens"),
                                     text("unlearn_max_new_tokens")),
        score_batch_size=_positive(origin("unlearn_score_batch_size"),
                                   text("unlearn_score_batch_size")),
        inject=inject,
        leak_samples=_non_negative(origin("unlearn_leak_samples"), text("unlearn_leak_samples")),
        attack=_attack(origin("unlearn_attack"), text("unlearn_attack")),
        json_path=_output_file(origin("unlearn_json"), text("unlearn_json")),
        curve_every=_non_negative(origin("unlearn_curve_every"), text("unlearn_curve_every")),
        plots_dir=_plots_dir(origin("unlearn_plots"), text("unlearn_plots")),
        config_path=_existing_file(origin("unlearn_config"), text("unlearn_config")),
        general_tasks=_general_tasks(origin("unlearn_general_tasks"),
                                     text("unlearn_general_tasks")),
        general_limit=(_positive(origin("unlearn_general_limit"), text("unlearn_general_limit"))
                       if text("unlearn_general_limit") else None),
        reference=(check_model_spec(text("unlearn_reference"), origin("unlearn_reference"))
                   if text("unlearn_reference") else None),
        gate_path=_existing_file(origin("unlearn_gate"), text("unlearn_gate")),
        save_baseline=_baseline_name(origin("unlearn_save"), text("unlearn_save")),
        compare_baseline=_baseline_name(origin("unlearn_compare"), text("unlearn_compare")),
        trust_remote_code=bool(raw["unlearn_trust_remote_code"]),
        rebuild=bool(raw["unlearn_rebuild"]),
        build_only=bool(raw["unlearn_build_only"]),
    )


def _plots_dir(origin: Origin, text: str) -> Path | None:
    """--unlearn-plots needs matplotlib, an optional extra: say so before any model is built."""
    if not text:
        return None
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise UnlearnError(f"{origin.label(text, quote=False)}: drawing plots needs "
                           "matplotlib, which is not installed; install it with: pip install "
                           "'pytest-unlearn[plots]'")
    return Path(text).expanduser()


def _attack(origin: Origin, text: str) -> dict[str, float]:
    """'steps=8,fraction=0.1,lr=auto' -> {"steps": 8, "fraction": 0.1, "lr": nan (auto)}."""
    values: dict[str, float] = {"steps": 8, "fraction": 0.1, "lr": math.nan}
    given: set[str] = set()
    label = origin.label(text)
    usage = ("write it as steps=K,fraction=F,lr=LR (any subset, each at most once), e.g. "
             "--unlearn-attack=steps=16,fraction=0.2,lr=1e-4")
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if key not in values or not value:
            raise UnlearnError(f"{label}: {part!r} is not one of steps=, fraction=, lr=; {usage}")
        if key in given:
            raise UnlearnError(f"{label}: {key} is given more than once; {usage}")
        given.add(key)
        if key == "lr" and value == "auto":
            continue
        try:
            number = int(value) if key == "steps" else float(value)
        except ValueError:
            raise UnlearnError(f"{label}: {key} must be a number, got {value!r}; {usage}") from None
        if not math.isfinite(number):
            raise UnlearnError(f"{label}: {key}={value} is not a finite number; {usage}")
        if number <= 0 or (key == "fraction" and number > 1):
            raise UnlearnError(f"{label}: {key}={value} is out of range "
                               "(steps and lr > 0, 0 < fraction <= 1)")
        values[key] = number
    return values


def _prompts(origin: Origin, text: str) -> tuple[str, ...]:
    from .prompts import PROMPTS

    chosen = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    if not chosen:
        raise UnlearnError(f"{origin.place} is empty: name one or more of {', '.join(PROMPTS)}")
    for name in chosen:
        _choice(origin, name, PROMPTS)
    return chosen


def _general_tasks(origin: Origin, text: str) -> str:
    """'auto', 'builtin', 'paper', or lm-eval task names (normalized to 'a,b')."""
    if not text:
        return "auto"
    names = [name.strip() for name in text.split(",") if name.strip()]
    accepted = ("'auto', 'builtin', 'paper', or lm-eval task names separated by commas, "
                "e.g. mmlu,arc_challenge")
    if not names:
        raise UnlearnError(f"{origin.label(text)} names no general task: give {accepted}")
    keywords = [name for name in names if name in GENERAL_TASK_SETS]
    if keywords and len(names) > 1:
        raise UnlearnError(f"{origin.label(text)}: {keywords[0]!r} stands for a set of tasks "
                           f"and cannot be listed with others: give {accepted}")
    return ",".join(names)


def _worker_gpus(origin: Origin, text: str) -> str:
    """'auto', 'off', or GPU ids as workers.pin_worker_gpu takes them."""
    if not text or text in ("auto", "off"):
        return text or "auto"
    gpus = [gpu.strip() for gpu in text.split(",")]
    wrong = [gpu for gpu in gpus if not _GPU_ID.fullmatch(gpu)]
    if wrong:
        raise UnlearnError(
            f"{origin.label(text)}: {wrong[0]!r} is not a GPU id; give 'auto' (the visible "
            "GPUs), 'off', or a comma-separated list of GPU indices or nvidia-smi UUIDs, "
            "e.g. 0,1,2,3")
    return ",".join(gpus)


def parse_criterion(text: str, origin: Origin | None = None) -> float:
    """'exact' -> 1.0; 'token>=0.9' -> 0.9. Anything else is an error."""
    text = text.strip()
    if text == "exact":
        return 1.0
    match = re.fullmatch(r"token>=([0-9]*\.?[0-9]+)", text)
    if match and 0.0 < float(match.group(1)) <= 1.0:
        return float(match.group(1))
    origin = origin or Origin("--unlearn-criterion", "unlearn_criterion")
    raise UnlearnError(
        f"{origin.label(text)} is not a criterion: use 'exact' (every answer token is "
        "the model's argmax) or 'token>=T' with 0 < T <= 1, e.g. 'token>=0.9'")


def check_model_spec(spec: str, origin: Origin | None = None) -> str:
    """Accept an alias, 'tiny', a model folder (with config.json), an existing .gguf file, or
    an owner/name hub id."""
    origin = origin or Origin("--model", "unlearn_model")
    if spec in MODEL_ALIASES or spec == TINY_MODEL:
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
                "id, or one of: " + _model_choices())
        return spec
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return spec
        raise UnlearnError(
            f"{origin.label(spec)} is a file but not a .gguf file: pass a model folder (with "
            "config.json), a .gguf file, a hub id, or one of: " + _model_choices())
    if path.suffix.lower() == ".gguf":
        raise UnlearnError(f"{origin.label(spec)}: no such .gguf file (looked in {Path.cwd()})")
    if _HUB_ID.match(spec) and not spec.startswith("."):
        return spec
    raise UnlearnError(
        f"{origin.place}: unknown model {spec!r}"
        f"{_did_you_mean(spec, [*MODEL_ALIASES, TINY_MODEL])}: it is not an alias, not a local "
        "folder or .gguf file, and not a hub id of the form owner/name. "
        "Available aliases: " + _model_choices())


def check_data_spec(spec: str, origin: Origin | None = None) -> str:
    """Accept 'builtin', an existing folder, or an owner/name hub id."""
    origin = origin or Origin("--unlearn-data", "unlearn_data")
    if spec == BUILTIN_DATA:
        return spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return spec
    if path.exists():
        raise UnlearnError(
            f"{origin.label(spec)} is a file; pass the folder that holds "
            "unlearn_train.json, unlearn_val.json, retention_train.json and retention_val.json")
    if _HUB_ID.match(spec) and not spec.startswith("."):
        return spec
    raise UnlearnError(
        f"{origin.place}: unknown dataset {spec!r}"
        f"{_did_you_mean(spec, [BUILTIN_DATA, KNOWUNDO_HUB_ID])}: no such "
        f"folder (looked in {Path.cwd()}) and not a hub id of the form owner/name. Available: "
        f"'{BUILTIN_DATA}' (data the plugin writes itself), '{KNOWUNDO_HUB_ID}' (the hub), or a "
        "folder with {unlearn,retention}_{train,val}.json")


def _ood_data(origin: Origin, text: str) -> str:
    if text == BUILTIN_DATA or Path(text).expanduser().is_file():
        return text
    raise UnlearnError(
        f"{origin.label(text)}: no such file (looked in {Path.cwd()}). Use "
        f"'{BUILTIN_DATA}' or a JSON array / JSONL file of {{\"text\", \"labels\"}} records.")


def _model_choices() -> str:
    aliases = ", ".join(f"{alias} ({hub_id})" for alias, hub_id in MODEL_ALIASES.items())
    return f"{aliases}, {TINY_MODEL} (a small model built in code, for CPU runs)"


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _choice(origin: Origin, value: str, choices: tuple[str, ...]) -> str:
    value = value.strip()
    if value not in choices:
        raise UnlearnError(f"{origin.label(value)}{_did_you_mean(value, list(choices))} is not "
                           "one of: " + ", ".join(choices))
    return value


def _non_negative(origin: Origin, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UnlearnError(f"{origin.label(text)} is not an integer") from None
    if value < 0:
        raise UnlearnError(f"{origin.label(text)} must be zero or positive")
    return value


def _positive(origin: Origin, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UnlearnError(f"{origin.label(text)} is not an integer") from None
    if value < 1:
        raise UnlearnError(f"{origin.label(text)} must be at least 1")
    return value


def _seed(origin: Origin, text: str) -> int:
    seed = _non_negative(origin, text)
    if seed >= SEED_LIMIT:
        raise UnlearnError(f"{origin.label(text)} is too large: torch, numpy and random take "
                           f"seeds from 0 to 2**32 - 1 = {SEED_LIMIT - 1}; pick one in that range")
    return seed


def _seed_count(origin: Origin, text: str) -> int:
    seeds = _positive(origin, text)
    if seeds > MAX_SEEDS:
        raise UnlearnError(
            f"{origin.label(text)} is more than {MAX_SEEDS}: each seed is one more unlearning "
            "run of every method and one more test per item, so collection alone would take "
            f"hours; {MAX_SEEDS} seeds or fewer (5-10 usually give tight intervals)")
    return seeds


def _baseline_name(origin: Origin, text: str) -> str | None:
    """Baseline names become file names, so they are kept to a safe alphabet."""
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", text):
        raise UnlearnError(f"{origin.label(text)}: a baseline name is 1-64 letters, digits, '_', "
                           "'.' or '-', starting with a letter or digit")
    return text


def _existing_file(origin: Origin, text: str) -> Path | None:
    if not text:
        return None
    path = Path(text).expanduser()
    if not path.is_file():
        raise UnlearnError(f"{origin.label(text)}: no such file (looked in {Path.cwd()})")
    return path


def _output_file(origin: Origin, text: str) -> Path | None:
    """A file the run writes at its end (creating missing folders): check now that it can."""
    if not text:
        return None
    path = Path(text).expanduser()
    fix = "choose a file in a folder you can write to"
    if path.is_dir():
        raise UnlearnError(f"{origin.label(text)} is a folder, not a file; name the file to "
                           f"write, e.g. {path / 'unlearn-report.json'}")
    if path.exists() and not os.access(path, os.W_OK):
        raise UnlearnError(f"{origin.label(text)}: the file is not writable; {fix}")
    _check_writable_folder(origin.label(text), path.absolute().parent, fix)
    return path


def _check_writable_folder(label: str, folder: Path, fix: str) -> None:
    """``folder`` is a folder this process can write in, or can be created as one."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        blocked = "" if existing == folder else f", so the folder {folder} cannot be created"
        raise UnlearnError(f"{label}: {existing} is a file, not a folder{blocked}; {fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnlearnError(f"{label}: no permission to write in the folder {existing}; {fix}")


def _cache_dir(origin: Origin, text: str, rootdir: Path) -> Path:
    if not text:
        # Not checked: every pytest run loads the plugin, and one that tests no model must
        # not fail on an unwritable home folder.
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "pytest-unlearn"
    path = Path(text).expanduser()
    # An ini value is relative to the project, like pytest's own cache_dir.
    if not path.is_absolute() and origin.source in ("ini", "-o"):
        path = rootdir / path
    path = path.resolve()
    if path.is_dir() and os.access(path, os.R_OK | os.X_OK):
        # A read-only cache (a shared CI cache) serves what it holds; a run that would have
        # to build something there says so when it gets to it.
        return path
    _check_writable_folder(origin.label(text), path,
                           "remove what is in the way or choose another --unlearn-cache-dir")
    return path
