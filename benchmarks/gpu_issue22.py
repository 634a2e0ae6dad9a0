"""Issue 22 on a GPU machine, in one command: for SmolLM2 and for the largest pretrained
model found offline there, inject and report the vanilla recall per scope (item 1), tune
every method by the fair protocol (item 2, ``benchmarks/tune.py``), run the general suite
(item 3, where lm-eval is installed) and the fidelity run of every paper method and NPO
over three seeds (item 4, ``benchmarks/fidelity.py``), writing everything under ``--out``
(default ``$OUT``) within the ``--budget`` (default 570 s).

    python benchmarks/gpu_issue22.py                      # on the GPU machine
    python benchmarks/gpu_issue22.py --profile cpu-test   # the tiny rehearsal (tests/)

Each step runs in a subprocess with the time that is left, so a slow step leaves the
others' output; ``summary.json`` and ``summary.md`` say per model and step what ran, how
long it took, its exit status and where its output is, and ``injection-*.json`` the
vanilla model's injection log (exact recall per scope). A model whose files are absent is
reported as skipped, with the reason (for SmolLM2: the pip command). The largest model is
the largest causal LM (by weight bytes) among the folders of the local Hugging Face cache
(``HF_HOME``) and ``--model-dirs``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # pytest_unlearn, before (or without) an installed copy
PAPER_METHODS = (
    "none,gradient_ascent,random_labels,adversarial,ga_gd_id,ga_gd_ood,ga_kl_id,ga_kl_ood,"
    "memflex,npo"
)
TUNED_METHODS = "gradient_ascent,ga_gd_id,ga_kl_id,npo,memflex"


@dataclass(frozen=True)
class Profile:
    """What one invocation runs: the models, the data, the grid and the method lists."""

    models: tuple[str, ...]
    persons: int  # 0: every person of the data
    grid: str
    tuned_methods: str
    fidelity_methods: str
    seeds: int
    general: bool
    inject_config: str  # YAML text of an --unlearn-config for every run ("" for none)


PROFILES = {
    "gpu": Profile(
        models=("smollm2", "largest"),
        persons=20,
        grid="3e-5,1e-4,3e-4,1e-3",
        tuned_methods=TUNED_METHODS,
        fidelity_methods=PAPER_METHODS,
        seeds=3,
        general=True,
        inject_config="",
    ),
    # The rehearsal on a CPU (tests/test_gpu_script.py): the tiny model, 4 persons of the
    # builtin data, 4 injection epochs, one grid point, two methods, one seed.
    "cpu-test": Profile(
        models=("tiny",),
        persons=4,
        grid="1e-4",
        tuned_methods="gradient_ascent",
        fidelity_methods="none,gradient_ascent",
        seeds=1,
        general=False,
        inject_config="inject:\n  epochs: 4\n  target_token_accuracy: null\n",
    ),
}


def largest_local_model(extra_dirs: list[Path]) -> tuple[Path | None, str]:
    """The largest causal LM folder (config.json and *.safetensors) in the HF hub cache
    and ``extra_dirs``, by the bytes of its weights; and what was searched."""
    roots = [Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"]
    roots += extra_dirs
    best: tuple[int, Path] | None = None
    for root in roots:
        if not root.is_dir():
            continue
        for config in root.rglob("config.json"):
            folder = config.parent
            try:
                architectures = json.loads(config.read_text()).get("architectures") or []
            except (OSError, json.JSONDecodeError):
                continue
            if not any(name.endswith("ForCausalLM") for name in architectures):
                continue
            size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
            if size and (best is None or size > best[0]):
                best = (size, folder)
    searched = ", ".join(map(str, roots))
    return (best[1] if best else None), searched


class Runner:
    """Runs the steps under one deadline and records each."""

    def __init__(self, out: Path, budget: float) -> None:
        self.out = out
        self.deadline = time.monotonic() + budget
        self.steps: list[dict[str, Any]] = []

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, model: str, step: str, command: list[str], limit: float) -> int | None:
        """Run ``command`` for at most ``limit`` seconds (at least 20, at most what is left);
        its output goes to ``<model>/<step>.log``. None: not started, the budget was spent."""
        log = self.out / model / f"{step}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        limit = min(max(limit, 20.0), self.left())
        record: dict[str, Any] = {
            "model": model,
            "step": step,
            "log": str(log.relative_to(self.out)),
        }
        if self.left() < 20:
            record.update(status="not run: the time budget was spent")
            self.steps.append(record)
            return None
        started = time.monotonic()
        with log.open("w") as output:
            output.write("$ " + " ".join(command) + "\n")
            output.flush()
            # A session of its own, so that a step stopped at its limit takes the pytest
            # runs it started with it.
            process = subprocess.Popen(
                command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
            try:
                code = process.wait(timeout=limit)
                record["status"] = f"exit {code}"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                code = 124
                record["status"] = f"stopped after its {limit:.0f} s"
        record["seconds"] = round(time.monotonic() - started, 1)
        self.steps.append(record)
        print(f"{model} {step}: {record['status']} ({record['seconds']} s)", flush=True)
        return code

    def skip(self, model: str, reason: str) -> None:
        self.steps.append({"model": model, "step": "-", "status": f"skipped: {reason}"})
        print(f"{model}: skipped: {reason}", flush=True)


def install_carried_wheels(out: Path) -> None:
    """As benchmarks/gpu_checks.sh does on a machine without network: the repository
    without its dependencies, the wheels of .whl (rouge-score, nltk, gguf) and of
    .whl-lmeval (lm-eval and its stack, for the general step) into folders of their own,
    put on PYTHONPATH for every step. Nothing happens for what is not there."""
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps"]
    log = (out / "install.log").open("w")
    subprocess.run([*pip, "--no-build-isolation", "-e", str(ROOT)], stdout=log, stderr=log)
    paths = []
    for folder, target in ((".whl", "/tmp/site"), (".whl-lmeval", "/tmp/site-lmeval")):
        wheels = sorted(str(w) for w in (ROOT / folder).glob("*.whl"))
        if wheels:
            subprocess.run(
                [*pip, "--no-compile", "--target", target, *wheels], stdout=log, stderr=log
            )
            paths.append(target)
    if paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")])


def prepare_data(args: argparse.Namespace, profile: Profile) -> str:
    """The data every step uses: ``--data``, or a seeded subset of its whole persons."""
    if not profile.persons:
        return str(args.data)
    from pytest_unlearn.data import load_domain
    from pytest_unlearn.dev_split import person_subset, write_folder

    subset = person_subset(load_domain(str(args.data), "privacy"), profile.persons, seed=0)
    folder = write_folder(subset, args.out / "data")
    (args.out / "data" / "SOURCE.txt").write_text(subset.source + "\n")
    return str(folder)


def resolve_models(args: argparse.Namespace, profile: Profile, runner: Runner) -> list[str]:
    from pytest_unlearn.errors import UnlearnError
    from pytest_unlearn.models import check_model_spec

    models = []
    for name in args.models.split(",") if args.models else profile.models:
        if name == "largest":
            found, searched = largest_local_model(args.model_dirs)
            if found is None:
                runner.skip(name, f"no causal LM folder with safetensors in {searched}")
                continue
            name = str(found)
        try:
            check_model_spec(name)
        except UnlearnError as error:
            runner.skip(name, str(error))
            continue
        if name not in models:
            models.append(name)
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="gpu")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-issue22")))
    parser.add_argument("--budget", type=float, default=570.0, help="seconds for everything")
    parser.add_argument("--models", default="", help="comma-separated; default: the profile's")
    parser.add_argument("--model-dirs", type=Path, nargs="*", default=[])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT / "shared" / "knowundo" / "privacy"
        if (ROOT / "shared" / "knowundo" / "privacy").is_dir()
        else "builtin",
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    profile = PROFILES[args.profile]
    args.out.mkdir(parents=True, exist_ok=True)
    # Outside --out: the models are too large to bring back.
    cache: Path = args.cache_dir or Path(tempfile.gettempdir()) / "gpu-issue22-cache"
    runner = Runner(args.out, args.budget)
    if args.profile == "gpu":
        install_carried_wheels(args.out)
    data = prepare_data(args, profile)
    config = args.out / "inject.yaml"
    config.write_text(profile.inject_config or "{}\n")
    models = resolve_models(args, profile, runner)
    python = sys.executable
    for number, model in enumerate(models):
        tag = Path(model).name
        # Each model gets its share of what is left, split over its steps.
        budget = runner.left() / (len(models) - number)
        end = time.monotonic() + budget
        cache_option = f"--unlearn-cache-dir={cache}"
        runner.run(
            tag,
            "inject",
            [
                *(python, "-m", "pytest", "suites/privacy/test_privacy.py", "-q", "--tb=no"),
                *("-p", "no:cacheprovider", f"--model={model}", "--unlearn-method=none"),
                *(f"--unlearn-data={data}", f"--unlearn-config={config}", cache_option),
                f"--unlearn-json={args.out / tag / 'vanilla.json'}",
            ],
            budget * 0.3,
        )
        for injection in sorted(cache.glob("vanilla/*/*/injection.json")):
            name = f"injection-{injection.parent.name[:12]}.json"
            shutil.copy(injection, args.out / tag / name)
        tuned = args.out / tag / "tuned.yaml"
        runner.run(
            tag,
            "tune",
            [
                *(python, "benchmarks/tune.py", f"--model={model}", f"--data={data}"),
                *(f"--grid={profile.grid}", f"--methods={profile.tuned_methods}"),
                *(f"--config={config}", f"--cache-dir={cache}", f"--out={tuned}"),
                f"--report={args.out / tag / 'tuning.md'}",
            ],
            budget * 0.45,
        )
        if profile.general:
            runner.run(
                tag,
                "general",
                [
                    *(python, "-m", "pytest", "suites/general", "-q", "--tb=short"),
                    *("-p", "no:cacheprovider", f"--model={model}", "--unlearn-method=none"),
                    *("--unlearn-inject=never", "--unlearn-general-tasks=builtin", cache_option),
                    f"--unlearn-json={args.out / tag / 'general.json'}",
                ],
                budget * 0.1,
            )
        # The fidelity run uses the tuned learning rates, where tuning finished.
        fidelity_config = args.out / tag / "fidelity-config.yaml"
        fidelity_config.write_text(
            (profile.inject_config or "")
            + (tuned.read_text() if tuned.is_file() else "")
            + ("" if profile.inject_config or tuned.is_file() else "{}\n")
        )
        runner.run(
            tag,
            "fidelity",
            [
                *(python, "benchmarks/fidelity.py", f"--data={data}", f"--model={model}"),
                *("--suite=suites/privacy/test_privacy.py", f"--seeds={profile.seeds}"),
                *(f"--methods={profile.fidelity_methods}", f"--config={fidelity_config}"),
                *(f"--cache-dir={cache}", f"--out={args.out / tag / 'fidelity.md'}"),
            ],
            end - time.monotonic(),
        )
    summary = {"profile": args.profile, "data": data, "models": models, "steps": runner.steps}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [
        f"# Issue 22 on this machine ({args.profile}), data {data}",
        "",
        "| model | step | status | seconds | log |",
        "|---|---|---|---|---|",
    ]
    for step in runner.steps:
        lines.append(
            f"| {step['model']} | {step['step']} | {step['status']} | "
            f"{step.get('seconds', '-')} | {step.get('log', '-')} |"
        )
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
