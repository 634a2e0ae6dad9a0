"""Optimizer-state sharding under a launcher: one process against N processes training the
same model together (torchrun, gloo on CPU), side by side in one invocation.

Every tensor of the model is trained (full fine-tuning, where the AdamW state is largest:
two float32 tensors the size of the model), for --steps optimizer steps of --items-per-step
builtin privacy items. Each process reports the AdamW state it holds (the trainer's
``optimizer_state_bytes``), its peak resident memory and its median step time.

    python benchmarks/zero_memory.py --model smollm2 --processes 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

MARK = "ZERO_MEMORY "


def worker(args: argparse.Namespace) -> None:
    """One launched process: train, then print what it held."""
    import statistics

    from pytest_unlearn.encoding import encode_all
    from pytest_unlearn.pipeline import MAX_LENGTH
    from pytest_unlearn.session import UnlearnSession
    from pytest_unlearn.settings import settings_for_script
    from pytest_unlearn.training import Trainer, TrainSettings, answer_nll
    from scoring_speed import smollm2_path

    settings = settings_for_script(
        unlearn_model=smollm2_path() if args.model == "smollm2" else args.model,
        unlearn_data="builtin", unlearn_cache_dir=args.cache_dir, unlearn_device="cpu",
        unlearn_dtype="float32", unlearn_inject="never")
    session = UnlearnSession(settings, progress=lambda message: None)
    data = session.domain_data("privacy")
    handle = session.pipeline.load_vanilla(data)
    model, pad = handle.model, handle.pad_id
    model.requires_grad_(True)
    records = [item.record for item in data.items()]
    wanted = args.items_per_step * args.steps
    records = (records * (wanted // len(records) + 1))[:wanted]
    encoded = encode_all(handle.tokenizer, records, MAX_LENGTH, "benchmark")
    train = TrainSettings(lr=1e-5, epochs=1, batch_size=args.items_per_step, grad_accum=1,
                          warmup_ratio=0.0, scheduler="constant",
                          micro_batch_size=args.items_per_step, shuffle=False)
    log = Trainer(model, encoded, lambda batch: answer_nll(model, batch, pad), train, 0,
                  "zero_memory").run()
    print(MARK + json.dumps({
        "rank": int(os.environ.get("RANK", "0")),
        "parameters": sum(p.numel() for p in model.parameters()),
        "optimizer_state_bytes": log.optimizer_state_bytes,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "median_step_s": statistics.median(log.step_seconds)}), flush=True)


def launch(processes: int, args: argparse.Namespace, cache_dir: str) -> list[dict]:
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // processes)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={processes}", str(Path(__file__).resolve()), "--worker",
               f"--model={args.model}", f"--steps={args.steps}",
               f"--items-per-step={args.items_per_step}", f"--cache-dir={cache_dir}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{processes} process(es) failed:\n{(done.stdout + done.stderr)[-4000:]}")
    reports = [json.loads(line[len(MARK):]) for line in done.stdout.splitlines()
               if line.startswith(MARK)]
    return sorted(reports, key=lambda report: report["rank"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, smollm2, or any --model value")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--items-per-step", type=int, default=4)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    print("command: python benchmarks/zero_memory.py " + " ".join(sys.argv[1:]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = args.cache_dir or scratch
        alone = launch(1, args, cache_dir)
        together = launch(args.processes, args, cache_dir)
    mib = 1024 * 1024
    print(f"model: {args.model} ({alone[0]['parameters']:,} parameters, all trained, float32); "
          f"{args.steps} steps of {args.items_per_step} builtin items")
    for label, reports in (("1 process", alone), (f"{args.processes} processes", together)):
        for report in reports:
            print(f"  {label:12s} rank {report['rank']}: AdamW state "
                  f"{report['optimizer_state_bytes'] / mib:8.1f} MiB, peak RSS "
                  f"{report['peak_rss_bytes'] / mib:8.1f} MiB, median step "
                  f"{report['median_step_s']:.2f} s")
    largest = max(report["optimizer_state_bytes"] for report in together)
    print(f"largest share of the AdamW state with {args.processes} processes: "
          f"{largest / alone[0]['optimizer_state_bytes']:.3f} of one process's "
          f"(ideal {1 / args.processes:.3f})")


if __name__ == "__main__":
    main()
