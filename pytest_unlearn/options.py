"""The plugin's command-line options and ini keys: one table, the pytest face of
``settings.py`` (which parses and checks the values, without pytest).

Every option is also an ini key (``[tool.pytest.ini_options]`` or ``pytest.ini``); the
command line wins over the ini file, which wins over the default. ``docs/options.md`` is
generated from this table (``python -m pytest_unlearn.options``), so it cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from .errors import UnlearnError
from .packaged_models import PACKAGED_MODELS
from .settings import DEVICES, DTYPES, Origin, Settings, build
from .vocabulary import BUILTIN_DATA, KNOWUNDO_HUB_ID, MODEL_ALIASES, TINY_MODEL


@dataclass(frozen=True)
class Option:
    """One plugin option: its flags, ini key, default and help text."""

    dest: str
    flags: tuple[str, ...]
    default: str
    help: str
    ini_type: str = "string"


OPTIONS: tuple[Option, ...] = (
    Option(
        "unlearn_method",
        ("--unlearn-method",),
        "none",
        "unlearning method(s), comma-separated; 'none' is the vanilla model, 'all' every "
        "registered method, 'memflex+controls' MemFlex and its three ablation controls",
    ),
    Option(
        "unlearn_model",
        ("--unlearn-model",),
        TINY_MODEL,
        "model: alias ("
        + ", ".join(MODEL_ALIASES)
        + "), a small model from PyPI ("
        + ", ".join(PACKAGED_MODELS)
        + "), hub id, local folder, local .gguf file, or 'tiny' (the suites' folder also "
        "takes it as --model)",
    ),
    Option(
        "unlearn_data",
        ("--unlearn-data",),
        BUILTIN_DATA,
        f"KnowUnDo data: hub id ({KNOWUNDO_HUB_ID}), local folder with "
        "{unlearn,retention}_{train,val}.json, or 'builtin'",
    ),
    Option(
        "unlearn_ood_data",
        ("--unlearn-ood-data",),
        BUILTIN_DATA,
        "out-of-distribution retain text for the *_ood methods: 'builtin' (general text "
        'the plugin writes itself) or a JSON/JSONL file of {"text", "labels"} records',
    ),
    Option(
        "unlearn_cache_dir",
        ("--unlearn-cache-dir",),
        "",
        "where built models are cached (default: $XDG_CACHE_HOME/pytest-unlearn; an ini value "
        "is relative to the project); a read-only cache serves what it holds",
    ),
    Option(
        "unlearn_device",
        ("--unlearn-device",),
        "auto",
        "device: " + ", ".join(DEVICES) + " (balanced: a pretrained model spread over "
        "every visible GPU with accelerate's device_map)",
    ),
    Option(
        "unlearn_worker_gpus",
        ("--unlearn-worker-gpus",),
        "auto",
        "under pytest-xdist, give worker gwK the (K mod G)-th GPU via CUDA_VISIBLE_DEVICES: "
        "'auto' (the visible GPUs), 'off', or GPU ids such as 0,1,2,3",
    ),
    Option(
        "unlearn_gradient_checkpointing",
        ("--unlearn-gradient-checkpointing",),
        "auto",
        "recompute activations in the backward pass to save memory when training a "
        "pretrained model: auto (on for a pretrained model on a GPU), on, off",
    ),
    Option(
        "unlearn_dtype",
        ("--unlearn-dtype",),
        "auto",
        "dtype: " + ", ".join(DTYPES) + " (auto: float32 on CPU and for the tiny model, "
        "bfloat16 for other models on a GPU)",
    ),
    Option("unlearn_seed", ("--unlearn-seed",), "0", "random seed of injection and unlearning"),
    Option(
        "unlearn_seeds",
        ("--unlearn-seeds",),
        "1",
        "run the unlearning of each method under N seeds (--unlearn-seed .. +N-1; the "
        "injected model is shared): one test per item and seed, metrics as means with "
        "bootstrap intervals",
    ),
    Option(
        "unlearn_criterion",
        ("--unlearn-criterion",),
        "whole-answer",
        "when an answer counts as recalled in the item tests: 'whole-answer' (every answer "
        "token is the teacher-forced argmax) or 'token-share>=T' (at least a share T of them "
        "are, 0 < T <= 1); the old 'exact' and 'token>=T' are refused with the new spelling",
    ),
    Option(
        "unlearn_prompts",
        ("--unlearn-prompts",),
        "plain",
        "prompt variants the item tests ask under, comma-separated: plain (the question "
        "alone), helpful (paper Finding 2's 'You are a helpful assistant...'), direct (the "
        "reference's privacy- or copyright-sensitive prompt); one test per variant",
    ),
    Option(
        "unlearn_max_new_tokens",
        ("--unlearn-max-new-tokens",),
        "64",
        "cap on the greedy generation per item, for ROUGE-L (each generation is as long as "
        "its reference answer, up to this); 0 turns generation off",
    ),
    Option(
        "unlearn_score_batch_size",
        ("--unlearn-score-batch-size",),
        "32",
        "items per batch when scoring and generating (lower it if scoring runs out of "
        "memory; the scores do not depend on it)",
    ),
    Option(
        "unlearn_inject",
        ("--unlearn-inject",),
        "auto",
        "knowledge injection before unlearning: 'auto' (inject, cached) or 'never' "
        "(the model already holds the knowledge, e.g. a release candidate; not with the tiny "
        "model, which is random until injected)",
    ),
    Option(
        "unlearn_leak_samples",
        ("--unlearn-leak-samples",),
        "4",
        "leak tests: besides the greedy generation, this many sampled generations "
        "(temperature 1, seeded) per unlearn item must not contain its sensitive strings",
    ),
    Option(
        "unlearn_attack",
        ("--unlearn-attack",),
        "steps=8,fraction=0.1,lr=auto",
        "relearning attack of the tests marked 'attack': fine-tune the unlearned model "
        "for STEPS optimizer steps (batch 8) on FRACTION of the unlearn train records at "
        "LR (auto: 1e-4 for the tiny model, the LoRA injection lr otherwise), then test the "
        "unlearn val items again",
    ),
    Option(
        "unlearn_json", ("--unlearn-json",), "", "write the metrics report as JSON to this path"
    ),
    Option(
        "unlearn_curve_every",
        ("--unlearn-curve-every",),
        "0",
        "training curves: score the val items every N optimizer steps while a method "
        "unlearns (paper Figure 4); 0 turns them off",
    ),
    Option(
        "unlearn_plots",
        ("--unlearn-plots",),
        "",
        "write plots into this folder, as PNG, PDF and SVG: each method's training curve "
        "(with --unlearn-curve-every) and a bar chart of the successes, attack and leak "
        "included, with their intervals",
    ),
    Option(
        "unlearn_config",
        ("--unlearn-config",),
        "",
        "YAML file with one section per method that overrides its config fields",
    ),
    Option(
        "unlearn_general_tasks",
        ("--unlearn-general-tasks",),
        "auto",
        "general tasks of suites/general, comma-separated lm-eval names; 'builtin' (offline "
        "tasks the plugin writes), 'paper' (mmlu, arc_challenge, truthfulqa_mc2, "
        "social_iqa, race), or 'auto' (builtin for the tiny model, paper otherwise)",
    ),
    Option(
        "unlearn_general_limit",
        ("--unlearn-general-limit",),
        "",
        "at most this many documents per general task (default: all); an accuracy over N "
        "documents has a standard error of up to 0.5/sqrt(N), 0.09 at N = 30, so decide "
        "releases on full tasks",
    ),
    Option(
        "unlearn_reference",
        ("--unlearn-reference",),
        "",
        "base model (path or hub id) that relative general-task thresholds compare "
        "against, for a model tested as it is (--unlearn-inject=never)",
    ),
    Option(
        "unlearn_holdout",
        ("--unlearn-holdout",),
        "auto",
        "Unlearn Scope records no model trains on, for membership inference (docs/privacy.md): "
        "'auto' (10%, at least enough for a meaningful AUC), a share in [0, 1), or 0 for none",
    ),
    Option(
        "unlearn_oracle",
        ("--unlearn-oracle",),
        "",
        "the retrained reference (a model that never learned the Unlearn Scope; path or hub "
        "id) for a model tested as it is (--unlearn-inject=never); otherwise it is built",
    ),
    Option(
        "unlearn_gate",
        ("--unlearn-gate",),
        "",
        "YAML release gate: minimum successes, maximum drops and perplexities; it decides "
        "the exit status and is its own JUnit test case",
    ),
    Option(
        "unlearn_findings",
        ("--unlearn-findings",),
        "fail",
        "how a failing item test is reported: 'fail' (a failed test), or 'xfail' (an "
        "expected failure carrying its finding, so CI test views show only the gate's "
        "verdict; needs --unlearn-gate; the pass rates are the same)",
    ),
    Option(
        "unlearn_save",
        ("--unlearn-save",),
        "",
        "save this run's per-item outcomes and metrics as a named baseline",
    ),
    Option(
        "unlearn_compare",
        ("--unlearn-compare",),
        "",
        "compare with a saved baseline: items newly leaked (Unlearn Scope) or newly lost "
        "(Retention Scope)",
    ),
    Option(
        "unlearn_trust_remote_code",
        ("--unlearn-trust-remote-code",),
        "false",
        "allow a model that ships its own Python code (an auto_map in its config) to run it "
        "(off unless you pass this)",
        "bool",
    ),
    Option(
        "unlearn_rebuild",
        ("--unlearn-rebuild",),
        "false",
        "ignore cached models and build them again",
        "bool",
    ),
    Option(
        "unlearn_build_only",
        ("--unlearn-build-only",),
        "false",
        "build (or find in the cache) every model the selected tests need and compute what "
        "they read (item scores, generations, general-task scores), then run no test; "
        "under accelerate launch or torchrun the processes do it together, data parallel",
        "bool",
    ),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("unlearn", "LLM unlearning (KnowUnDo)")
    for option in OPTIONS:
        text = option.help.replace("%", "%%")  # argparse formats help with %
        if option.ini_type == "bool":
            group.addoption(
                *option.flags,
                dest=option.dest,
                action="store_true",
                default=None,
                help=f"{text} (ini: {option.dest})",
            )
        else:
            default = f"default: {option.default}; " if option.default else ""
            group.addoption(
                *option.flags,
                dest=option.dest,
                default=None,
                metavar="VALUE",
                help=f"{text} ({default}ini: {option.dest})",
            )
        parser.addini(
            option.dest, option.help, type=_ini_type(option), default=_ini_default(option)
        )


def _ini_type(option: Option) -> Literal["bool", "string"]:
    return "bool" if option.ini_type == "bool" else "string"


def _ini_default(option: Option) -> Any:
    return option.default.lower() == "true" if option.ini_type == "bool" else option.default


# Each option's first flag, by its dest: how messages name the option.
FLAGS = {option.dest: option.flags[0] for option in OPTIONS}
# The suites' short form of --unlearn-model (suites/conftest.py): the plugin itself never
# defines it, so that it cannot clash with a project's own --model.
MODEL_SHORT_FLAG = "--model"


def resolve(config: pytest.Config) -> Settings:
    """Read every option (command line first, then ini, then default) and check it."""
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    inipath = Path(config.inipath) if config.inipath is not None else None
    overridden = {
        entry.partition("=")[0].strip() for entry in config.getoption("override_ini", None) or ()
    }
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
            where = Origin(FLAGS[option.dest], option.dest, sources[option.dest], inipath).place
            kind = (
                "true or false (or yes/no, on/off, 1/0)"
                if option.ini_type == "bool"
                else "a string, e.g. " + f'{option.dest} = "{option.default or "VALUE"}"'
            )
            raise pytest.UsageError(f"{where}: {error}; write {kind}") from None
        if sources[option.dest] == "ini" and raw[option.dest] == _ini_default(option):
            sources[option.dest] = "default"
    rootdir = Path(str(config.rootpath))
    flags = dict(FLAGS)
    if any(str(arg).split("=")[0] == MODEL_SHORT_FLAG for arg in config.invocation_params.args):
        flags["unlearn_model"] = MODEL_SHORT_FLAG  # messages name the flag the user wrote
    try:
        return build(raw, sources, flags, rootdir, inipath)
    except UnlearnError as error:
        raise pytest.UsageError(str(error)) from None


def settings_for_script(
    given_model: str | None = None, source: str = "script", **values: Any
) -> Settings:
    """Settings outside pytest (benchmark scripts, ``evaluate``): the option defaults, then
    ``values`` keyed by option dest (``unlearn_model="tiny"``), checked like the options;
    ``given_model`` names a model handed over in memory; ``source`` is how messages name
    the values (``parsing.Origin``)."""
    raw = {option.dest: _ini_default(option) for option in OPTIONS}
    unknown = set(values) - set(raw)
    if unknown:
        raise UnlearnError(f"unknown settings {sorted(unknown)}; they are: {', '.join(raw)}")
    raw.update(values)
    sources = {key: source if key in values else "default" for key in raw}
    return build(raw, sources, FLAGS, Path.cwd(), given_model=given_model)


def reference_markdown() -> str:
    """The options reference (docs/options.md): every flag, ini key, default and meaning."""
    lines = [
        "# Options",
        "",
        "Every option is also an ini key (`[tool.pytest.ini_options]` in pyproject.toml, "
        "or `pytest.ini`); the command line wins over the ini file, which wins over the "
        "default. Generated from `pytest_unlearn/options.py` by "
        "`python -m pytest_unlearn.options > docs/options.md`; "
        "`tests/test_docs.py` checks that it is current.",
        "",
        "| option | ini key | default | meaning |",
        "|---|---|---|---|",
    ]
    for option in OPTIONS:
        flags = ", ".join(f"`{flag}`" for flag in option.flags)
        default = f"`{option.default}`" if option.default else "(none)"
        meaning = option.help.replace("|", "\\|")
        lines.append(f"| {flags} | `{option.dest}` | {default} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_markdown(), end="")
