"""General-ability evaluation through lm-eval, on a model that is already in memory.

The paper checks that unlearning leaves a model's general abilities intact with five
lm-evaluation-harness tasks (`DEFAULT_REAL_TASKS`). Their datasets live on the Hugging Face
hub, so they only run with network access (or a populated datasets cache). For offline runs
and for the tiny model the project ships three small multiple-choice tasks of its own
(``builtin_tasks.py``).

`evaluate` wraps the model in lm-eval's `HFLM` (no reload, no server), loads the requested
tasks with a `TaskManager` and returns one score per task::

    {"unlearn_builtin_arith": {"metric": "acc", "value": 0.31, "stderr": 0.046, "n": 100}}

The reported metric is always ``acc``: for a multiple-choice task it is the share of
documents whose gold choice has the highest summed log-likelihood; for ``truthfulqa_mc2``
lm-eval names its score ``acc`` too (the normalized probability mass on the true answers);
for a group such as ``mmlu`` it is lm-eval's size-weighted mean over the subtasks. ``acc`` is
chosen over ``acc_norm`` because every task here defines it, so the suite compares like
with like.

Nothing heavy is imported at module level: torch, datasets and lm_eval load inside the
functions that need them.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .builtin_tasks import BUILTIN_TASKS, write_builtin_tasks
from .errors import UnlearnError
from .vocabulary import TINY_MODEL

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from .distributed import World

__all__ = ["DEFAULT_REAL_TASKS", "METRIC", "evaluate"]

# The paper's general-ability tasks (lm-eval names); their data comes from the hub.
DEFAULT_REAL_TASKS: tuple[str, ...] = (
    "mmlu",
    "arc_challenge",
    "truthfulqa_mc2",
    "social_iqa",
    "race",
)
# The one metric reported for every task (see the module docstring).
METRIC = "acc"

# lm-eval's default seed for fewshot sampling, numpy and torch (as in simple_evaluate).
_FEWSHOT_SEED = 1234


def task_names(choice: str, model: str) -> list[str]:
    """The tasks of --unlearn-general-tasks: 'builtin', 'paper', or names separated by
    commas; 'auto' is the builtin tasks for the tiny model and the paper's otherwise."""
    if choice == "auto":
        choice = "builtin" if model == TINY_MODEL else "paper"
    if choice == "builtin":
        return list(BUILTIN_TASKS)
    if choice == "paper":
        return list(DEFAULT_REAL_TASKS)
    return [name.strip() for name in choice.split(",") if name.strip()]


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[str],
    *,
    include_path: Path | None,
    limit: int | None,
    batch_size: int = 8,
    world: World | None = None,
) -> dict[str, dict[str, Any]] | None:
    """Score an in-memory model on lm-eval tasks; return ``{task: {"metric", "value",
    "stderr", "n"}}`` in the order of ``tasks``.

    With ``world`` (processes started by a launcher, each holding the same model), lm-eval
    runs data-parallel: each process answers its share of the requests, and the main process
    gathers the results and returns them; the others return None.

    ``model`` is a `transformers` causal LM or a peft ``PeftModel`` wrapping one; it is scored
    where it is (device and dtype unchanged) and left in the train/eval mode it came in.
    ``include_path`` is a folder of extra lm-eval task files (typically the one
    `write_builtin_tasks` wrote); builtin task names not found there are written to a
    temporary folder for the call. When every requested task is local, lm-eval's own task
    index is not built at all (it costs seconds); otherwise it is, with ``include_path``
    added. ``limit`` caps the documents per task (the first ``limit``), ``None`` runs all;
    for a group such as ``mmlu`` the limit applies to each subtask and ``n`` is their sum.

    The caller's global random states (python, numpy, torch) are restored afterwards, and the
    same model always gets the same scores. Raises `UnlearnError` for an unknown task name and
    for a task whose dataset cannot be loaded (typically: offline without a local copy).
    """
    names = list(dict.fromkeys(tasks))
    if not names:
        raise UnlearnError(
            "general-ability evaluation got no task names; pass some of "
            f"{', '.join(BUILTIN_TASKS + DEFAULT_REAL_TASKS)}"
        )
    if limit is not None and limit < 1:
        raise UnlearnError(
            f"general-ability evaluation: limit={limit} must be a positive "
            "number of documents per task, or None for all of them"
        )
    with contextlib.ExitStack() as stack:
        paths = _include_paths(names, include_path, stack)
        # Messages name the caller's folder, never the temporary one.
        shown = paths[:1] if include_path is not None else []
        manager = _task_manager(names, paths, shown)
        with _seeded_then_restored(model):  # task loading draws from the generators too
            loaded = _load_tasks(manager, names, shown)
            lm = _wrap_model(model, tokenizer, batch_size)
            if world is not None:
                _split_across(lm, world)
            results = _run(lm, loaded, limit)
    if results is None:
        if world is not None and not world.is_main:
            return None  # the main process has the results
        raise UnlearnError(
            "lm-eval returned no results (this process is not rank 0); run the "
            "general-ability evaluation in a single process"
        )
    return {name: _score(results, name) for name in names}


def _include_paths(
    names: list[str], include_path: Path | None, stack: contextlib.ExitStack
) -> list[Path]:
    """The folders of local task files: ``include_path``, plus a temporary folder with the
    builtin tasks when some requested builtin task is not in ``include_path``."""
    paths: list[Path] = []
    local: set[str] = set()
    if include_path is not None:
        folder = Path(include_path).expanduser().resolve()
        if not folder.is_dir():
            raise UnlearnError(
                f"general-ability task folder {folder} (include_path) does not "
                "exist; create it with write_builtin_tasks(folder) or pass "
                "include_path=None to use only the builtin and lm-eval tasks"
            )
        paths.append(folder)
        local = _local_task_names(folder)
    if any(name in BUILTIN_TASKS and name not in local for name in names):
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="unlearn-tasks-")))
        write_builtin_tasks(scratch)
        paths.append(scratch)
    return paths


def _local_task_names(folder: Path) -> set[str]:
    """Task, group and tag names declared by the YAML files under ``folder`` (cheap)."""
    from lm_eval.tasks._index import TaskIndex

    return set(TaskIndex.build([folder]))


def _task_manager(names: list[str], paths: list[Path], shown: list[Path]) -> Any:
    """A TaskManager that knows every requested name, built as cheaply as possible."""
    from lm_eval.tasks import TaskManager

    if paths:
        manager = TaskManager(include_path=[str(p) for p in paths], include_defaults=False)
        if all(name in manager.all_tasks for name in names):
            return manager
        known_locally = set(manager.all_tasks)
    else:
        known_locally = set()
    # Some names are not local. Reading every default YAML file's text is ~20x cheaper than
    # lm-eval's parsed index, and a name that appears in none of them cannot be a task.
    missing = [name for name in names if name not in known_locally]
    mentioned = _mentioned_in_lm_eval_tasks(missing)
    unknown = [name for name in missing if name not in mentioned]
    if unknown:
        raise UnlearnError(_unknown_task_message(unknown, shown))
    manager = TaskManager(include_path=[str(p) for p in paths] or None, include_defaults=True)
    unknown = [name for name in names if name not in manager.all_tasks]
    if unknown:
        raise UnlearnError(_unknown_task_message(unknown, shown))
    return manager


def _mentioned_in_lm_eval_tasks(names: list[str]) -> set[str]:
    """Those of ``names`` that occur in the text of a task YAML file shipped with lm-eval."""
    import lm_eval.tasks

    root = Path(lm_eval.tasks.__file__).parent
    found: set[str] = set()
    for path in root.rglob("*.yaml"):
        with contextlib.suppress(OSError):
            text = path.read_text(encoding="utf-8", errors="ignore")
            found.update(name for name in names if name in text)
            if len(found) == len(names):
                break
    return found


def _unknown_task_message(unknown: list[str], paths: list[Path]) -> str:
    where = (", nor a task of " + ", ".join(str(p) for p in paths)) if paths else ""
    return (
        f"unknown general-ability task {', '.join(map(repr, unknown))}: neither a builtin "
        f"task nor an lm-eval task{where}. The builtin tasks ({', '.join(BUILTIN_TASKS)}) run "
        f"offline; the paper's tasks ({', '.join(DEFAULT_REAL_TASKS)}) and any other "
        "lm-eval task name work too, but they download their datasets from the Hugging "
        "Face hub, so they need network access or a populated datasets cache. For a task "
        "of your own, put its YAML file in a folder and pass that folder as include_path."
    )


def _load_tasks(manager: Any, names: list[str], paths: list[Path]) -> Any:
    """Load the tasks (this is where lm-eval loads their datasets); errors say how to fix."""
    try:
        loaded = manager.load(names)
    except Exception as error:  # lm-eval and datasets raise many types here
        raise UnlearnError(_load_failure_message(names, paths, error)) from None
    for task in loaded["tasks"].values():
        # As simple_evaluate does: zero-shot unless the task says otherwise, fixed fewshot seed.
        if task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=_FEWSHOT_SEED)
    return loaded


def _load_failure_message(names: list[str], paths: list[Path], error: Exception) -> str:
    offline = any(
        os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on")
        for var in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
    )
    detail = f"{type(error).__name__}: {str(error).strip()[:500]}"
    real = [name for name in names if name not in BUILTIN_TASKS]
    message = (
        f"lm-eval could not load the dataset of general-ability task(s) "
        f"{', '.join(real or names)} ({detail})."
    )
    if offline:
        message += " HF_DATASETS_OFFLINE/HF_HUB_OFFLINE is set, so nothing is downloaded."
    return message + (
        " Hub datasets need network access once: download them where there is network "
        "(running the same lm-eval tasks once fills the datasets cache), then copy the "
        "Hugging Face cache (HF_HOME, or HF_DATASETS_CACHE) to this machine and set "
        "HF_DATASETS_OFFLINE=1; or write a task YAML whose dataset_path/data_files point to "
        "a local copy and pass its folder as include_path. The builtin tasks "
        f"({', '.join(BUILTIN_TASKS)}) always work offline; if one of them fails, its files "
        "were written elsewhere or damaged: run write_builtin_tasks(folder) again."
        + (f" Local task folders: {', '.join(map(str, paths))}." if paths else "")
    )


def _wrap_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int) -> Any:
    """lm-eval's HFLM around the in-memory model, with the model's own context length."""
    from lm_eval.models.huggingface import HFLM

    max_length = _context_length(model, tokenizer)
    try:
        return HFLM(
            pretrained=model,
            tokenizer=tokenizer,
            batch_size=batch_size,
            max_length=max_length,
            backend="causal",
        )
    except Exception as error:
        raise UnlearnError(
            f"lm-eval could not wrap the model "
            f"({type(model).__name__}) for general-ability evaluation: "
            f"{type(error).__name__}: {str(error)[:400]}. A causal LM from "
            "transformers (or a peft model wrapping one) and its tokenizer "
            "are expected."
        ) from None


def _split_across(lm: Any, world: World) -> None:
    """Put an HFLM around an in-memory model into lm-eval's data-parallel mode, which it
    otherwise enters only when it loads the model itself under ``accelerate launch``: its
    rank and world size decide each process's share of the requests, and its accelerator
    gathers the counts and results (the process group is the one ``distributed.world`` set
    up)."""
    import torch
    from accelerate import Accelerator

    lm.accelerator = Accelerator(cpu=not torch.cuda.is_available())
    lm._rank = world.rank
    lm._world_size = world.size


def _context_length(model: Any, tokenizer: Any) -> int | None:
    """The longest input the model takes: its config's position limit, lowered to the
    tokenizer's ``model_max_length`` when that is set to something real."""
    config = getattr(model, "config", None)
    limits = [
        getattr(config, attr, None) for attr in ("max_position_embeddings", "n_positions", "n_ctx")
    ]
    candidates = [int(value) for value in limits if isinstance(value, int) and value > 0][:1]
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        candidates.append(tokenizer_limit)
    return min(candidates) if candidates else None


@contextlib.contextmanager
def _seeded_then_restored(model: Any) -> Iterator[None]:
    """Seed the global random generators as simple_evaluate does, for the block only; then
    put back what evaluation changes as a side effect: the generators' states and the train
    or eval mode of every submodule (HFLM calls ``model.eval()``)."""
    import numpy
    import torch

    modes = [(module, module.training) for module in model.modules()]
    python_state = random.getstate()
    numpy_state = numpy.random.get_state()
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    random.seed(0)
    numpy.random.seed(_FEWSHOT_SEED)
    torch.manual_seed(_FEWSHOT_SEED)
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        random.setstate(python_state)
        numpy.random.set_state(numpy_state)
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def _run(lm: Any, loaded: Any, limit: int | None) -> dict[str, Any] | None:
    """lm-eval's evaluator loop (without simple_evaluate's environment report, which shells
    out to git and collects system information)."""
    from lm_eval import evaluator

    # None on every process but the main one of a data-parallel run.
    return evaluator.evaluate(
        lm=lm, task_dict=loaded, limit=limit, log_samples=False, bootstrap_iters=1000
    )


def _score(results: dict[str, Any], name: str) -> dict[str, Any]:
    """One task's (or group's) ``acc`` with its stderr and number of documents."""
    table = results.get("groups", {}).get(name) or results.get("results", {}).get(name)
    if table is None:
        raise UnlearnError(
            f"lm-eval returned no results for general-ability task {name!r} "
            f"(got {sorted(results.get('results', {}))})"
        )
    key = next((k for k in table if k.split(",")[0] == METRIC), None)
    if key is None:
        raise UnlearnError(
            f"general-ability task {name!r} reports no {METRIC!r} metric "
            f"(it reports {sorted(k for k in table if ',' in k)}); only "
            "multiple-choice tasks with an 'acc' metric are supported"
        )
    stderr = table.get(key.replace(METRIC, f"{METRIC}_stderr", 1))
    counts = results.get("n-samples", {})
    leaves = _leaf_tasks(results, name)
    n = sum(int(counts[leaf]["effective"]) for leaf in leaves if leaf in counts)
    return {
        "metric": METRIC,
        "value": float(table[key]),
        "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
        "n": n,
    }


def _leaf_tasks(results: dict[str, Any], name: str) -> list[str]:
    """The leaf tasks under ``name`` (itself when it is a task, not a group)."""
    children = results.get("group_subtasks", {}).get(name)
    if not children:
        return [name]
    return [leaf for child in children for leaf in _leaf_tasks(results, child)]
