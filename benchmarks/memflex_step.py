"""MemFlex's unlearning step against gradient ascent's on the same model: time per optimizer
step and peak memory during the steps (paper Table 5: MemFlex 0.79x the time, 0.96x the
memory of gradient ascent).

Each method runs in its own child process, alternating (GA, MemFlex, GA, MemFlex, ...), so
that peak memory is per method and drift on the machine hits both alike. A step is one
optimizer step of ``batch_size x grad_accum`` = 16 sequences for both methods (for MemFlex, 8
forget and 8 retain items). MemFlex's localization runs before its steps and is timed apart.

    python benchmarks/memflex_step.py --model tiny --data builtin
    python benchmarks/memflex_step.py --model smollm2 --data builtin --records 32 --epochs 1

Peak memory on the CPU is the resident set (VmHWM) after the first step, reset when step 1
ends, minus the resident set just before the method started (model loaded, data encoded); on
a GPU (--device cuda) it is torch's max_memory_allocated from the first step on, minus what
was allocated before the method started. Either covers gradients, optimizer state and
activations. "accounted" is the exact size of the gradients
and AdamW state of the tensors that train (fp32: 3 x 4 bytes per trained parameter).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

METHODS = ("gradient_ascent", "memflex")
# A child run that only builds the vanilla model (knowledge injection), so that no measured
# run builds it: its training steps would count as the method's.
PREPARE = "prepare"


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args: argparse.Namespace) -> None:
    """Run one method once; print one JSON line."""
    import dataclasses
    import time

    import torch
    from scoring_speed import smollm2_path

    from pytest_unlearn.options import settings_for_script
    from pytest_unlearn.registry import MethodRegistry
    from pytest_unlearn.session import UnlearnSession

    model_spec = smollm2_path() if args.model == "smollm2" else args.model
    settings = settings_for_script(
        unlearn_model=model_spec,
        unlearn_data=args.data,
        unlearn_cache_dir=args.cache_dir,
        unlearn_device=args.device,
        unlearn_dtype=args.dtype,
        unlearn_inject="auto" if args.model == "tiny" else "never",
    )
    on_gpu = args.device.startswith("cuda")
    steps: list[float] = []
    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        if ": step " in message:
            steps.append(time.perf_counter())
            if len(steps) == 1:
                if on_gpu:
                    torch.cuda.reset_peak_memory_stats()
                else:
                    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM)
        elif "localizing" in message and "localize" not in marks:
            marks["localize"] = time.perf_counter()

    session = UnlearnSession(settings, progress)
    session.start(MethodRegistry.from_entry_points())
    data = session.domain_data(args.domain)
    pipeline = session.pipeline
    handle = pipeline.load_vanilla(data)
    if args.child == PREPARE:
        return  # the vanilla model is in the cache now
    pipeline.prepare_trainable(handle, settings.seed)
    context = pipeline.unlearn_context(data, handle, settings.seed)
    if args.records:
        context = dataclasses.replace(
            context,
            forget=context.forget[: args.records],
            retain=context.retain[: args.records],
            forget_val=context.forget_val[: args.records],
            retain_val=context.retain_val[: args.records],
        )
    context = dataclasses.replace(context, progress=progress)
    config = session.method_config(args.child)
    if args.epochs:
        config = dataclasses.replace(config, epochs=args.epochs)
    method = session.registry.get(args.child)(config)
    torch.manual_seed(0)
    baseline = torch.cuda.memory_allocated() // 1024 if on_gpu else rss_kib("VmRSS")
    started = time.perf_counter()
    result = method.unlearn(context)
    peak = torch.cuda.max_memory_allocated() // 1024 if on_gpu else rss_kib("VmHWM")
    trained = result.log.get("region", {}).get("selected", handle.trainable)
    parameters = dict(result.model.named_parameters())
    trained_numel = sum(parameters[name].numel() for name in trained)
    intervals = [b - a for a, b in zip(steps, steps[1:])]
    print(
        json.dumps(
            {
                "method": args.child,
                "steps": len(steps),
                "step_seconds": statistics.median(intervals) if intervals else None,
                "before_steps_seconds": steps[0] - started if steps else None,
                "localize_seconds": (steps[0] - marks["localize"]) if "localize" in marks else None,
                "peak_extra_mib": (peak - baseline) / 1024,
                "baseline_mib": baseline / 1024,
                "trained_tensors": len(trained),
                "all_tensors": len(handle.trainable),
                "trained_parameters": trained_numel,
                "accounted_mib": trained_numel * 12 / 2**20,
                "threads": torch.get_num_threads(),
                "device": torch.cuda.get_device_name() if on_gpu else "cpu",
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--data", default="builtin")
    parser.add_argument("--domain", default="privacy")
    parser.add_argument("--cache-dir", default=str(ROOT / ".unlearn_cache"))
    parser.add_argument(
        "--records", type=int, default=0, help="use only the first N records of each split (0: all)"
    )
    parser.add_argument("--epochs", type=int, default=0, help="override epochs (0: preset)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (--unlearn-device)")
    parser.add_argument("--dtype", default="float32", help="--unlearn-dtype, e.g. bfloat16")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in METHODS}
    forwarded = [
        f"--model={args.model}",
        f"--data={args.data}",
        f"--domain={args.domain}",
        f"--cache-dir={args.cache_dir}",
        f"--records={args.records}",
        f"--epochs={args.epochs}",
        f"--device={args.device}",
        f"--dtype={args.dtype}",
    ]

    def run_child(name: str) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [sys.executable, __file__, *forwarded, f"--child={name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0:
            sys.exit(f"{name} failed:\n{completed.stderr[-4000:]}")
        return completed

    run_child(PREPARE)
    for _ in range(args.repeats):
        for name in METHODS:
            runs[name].append(json.loads(run_child(name).stdout.strip().splitlines()[-1]))
    print(f"command: python benchmarks/memflex_step.py {' '.join(sys.argv[1:])}")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {runs['memflex'][0]['threads']} torch threads, "
        f"device {runs['memflex'][0]['device']}, dtype {args.dtype}"
    )
    summary = {}
    for name, results in runs.items():
        first = results[0]
        summary[name] = {
            "step": statistics.median(r["step_seconds"] for r in results),
            "peak": statistics.median(r["peak_extra_mib"] for r in results),
            "accounted": first["accounted_mib"],
        }
        localize = [r["localize_seconds"] for r in results if r["localize_seconds"]]
        print(
            f"{name:16} {first['steps']:3d} steps; trains {first['trained_tensors']} of "
            f"{first['all_tensors']} tensors ({first['trained_parameters']:,} parameters); "
            f"median step {summary[name]['step']:.3f} s; peak during steps "
            f"+{summary[name]['peak']:.1f} MiB over {first['baseline_mib']:.0f} MiB; "
            f"accounted grads+AdamW {first['accounted_mib']:.2f} MiB"
            + (f"; localization {statistics.median(localize):.1f} s" if localize else "")
        )
    ga, mf = summary["gradient_ascent"], summary["memflex"]
    print(
        f"memflex / gradient_ascent: step time {mf['step'] / ga['step']:.2f}x (target <= 0.8x, "
        f"paper 0.79x); peak memory during steps {mf['peak'] / ga['peak']:.2f}x (target < 1, "
        f"paper 0.96x); accounted {mf['accounted'] / ga['accounted']:.2f}x"
    )
    print(f"median of {args.repeats} child runs per method")


if __name__ == "__main__":
    main()
