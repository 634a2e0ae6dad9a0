"""Sharding under a launcher: one process against N processes training the same model
together (torchrun, gloo on CPU), side by side in one invocation. The N processes split the
AdamW state (ZeRO stage 1, a plain launch), or the weights, gradients and AdamW state while
they train (FSDP2, as under accelerate launch --use_fsdp --fsdp_version 2).

Every tensor of the model is trained (full fine-tuning, where the training state is
largest: the gradients and two AdamW tensors, each the size of the model), for --steps
optimizer steps of --items-per-step builtin privacy items. Each process reports the AdamW
state it holds (the trainer's ``optimizer_state_bytes``), its resident memory before
training and its peak while training (sampled every 5 ms), its peak resident memory over
the whole process (loading included), and its median step time.

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

FSDP_ENV = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """The largest resident memory seen while the context runs, sampled by a thread."""

    def __init__(self, every_s: float = 0.005) -> None:
        import threading

        self.every_s = every_s
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, resident_bytes())
            self._done.wait(self.every_s)

    def __enter__(self) -> PeakSampler:
        self.peak = resident_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        self.peak = max(self.peak, resident_bytes())


def worker(args: argparse.Namespace) -> None:
    """One launched process: train, then print what it held."""
    import statistics

    from scoring_speed import smollm2_path

    from pytest_unlearn.encoding import encode_all
    from pytest_unlearn.options import settings_for_script
    from pytest_unlearn.session import UnlearnSession
    from pytest_unlearn.training import Trainer, TrainSettings, answer_nll
    from pytest_unlearn.vocabulary import MAX_LENGTH

    settings = settings_for_script(
        unlearn_model=smollm2_path() if args.model == "smollm2" else args.model,
        unlearn_data="builtin",
        unlearn_cache_dir=args.cache_dir,
        unlearn_device="cpu",
        unlearn_dtype="float32",
        # The tiny model is built random in code and knows nothing until injected.
        unlearn_inject="auto" if args.model == "tiny" else "never",
    )
    session = UnlearnSession(settings, progress=lambda message: None)
    data = session.domain_data("privacy")
    handle = session.pipeline.load_vanilla(data)
    model, pad = handle.model, handle.pad_id
    model.requires_grad_(True)
    records = [item.record for item in data.items()]
    wanted = args.items_per_step * args.steps
    records = (records * (wanted // len(records) + 1))[:wanted]
    encoded = encode_all(handle.tokenizer, records, MAX_LENGTH, "benchmark")
    train = TrainSettings(
        lr=1e-5,
        epochs=1,
        batch_size=args.items_per_step,
        grad_accum=1,
        warmup_ratio=0.0,
        scheduler="constant",
        micro_batch_size=args.items_per_step,
        shuffle=False,
    )
    trainer = Trainer(
        model, encoded, lambda batch: answer_nll(model, batch, pad), train, 0, "zero_memory"
    )
    before = resident_bytes()
    with PeakSampler() as sampler:
        log = trainer.run()
    rank = int(os.environ.get("RANK", "0"))
    # One file per process: lines the processes print at the same moment can interleave.
    (Path(args.report_dir) / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "parameters": sum(p.numel() for p in model.parameters()),
                "sharding": log.sharding,
                "optimizer_state_bytes": log.optimizer_state_bytes,
                "rss_before_training_bytes": before,
                "peak_rss_training_bytes": sampler.peak,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "median_step_s": statistics.median(log.step_seconds),
            }
        )
    )


def launch(
    processes: int, args: argparse.Namespace, cache_dir: str, fsdp: bool = False
) -> list[dict]:
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // processes)),
        **(FSDP_ENV if fsdp else {}),
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        str(Path(__file__).resolve()),
        "--worker",
        f"--model={args.model}",
        f"--steps={args.steps}",
        f"--items-per-step={args.items_per_step}",
        f"--cache-dir={cache_dir}",
    ]
    with tempfile.TemporaryDirectory() as report_dir:
        done = subprocess.run(
            [*command, f"--report-dir={report_dir}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"{processes} process(es) failed:\n{(done.stdout + done.stderr)[-4000:]}")
        return [
            json.loads((Path(report_dir) / f"rank{rank}.json").read_text())
            for rank in range(processes)
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, smollm2, or any --model value")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--items-per-step", type=int, default=4)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    import torch

    print("command: python benchmarks/zero_memory.py " + " ".join(sys.argv[1:]))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"Python {platform.python_version()}"
    )
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_")
    print(
        "allocator: glibc malloc, "
        + (f"MALLOC_MMAP_THRESHOLD_={threshold}" if threshold else "default settings")
    )
    with tempfile.TemporaryDirectory() as scratch:
        cache_dir = args.cache_dir or scratch
        runs = {
            "1 process": launch(1, args, cache_dir),
            f"{args.processes} processes, AdamW state sharded": launch(
                args.processes, args, cache_dir
            ),
            f"{args.processes} processes, FSDP": launch(args.processes, args, cache_dir, fsdp=True),
        }
    mib = 1024 * 1024
    [alone] = runs["1 process"]
    print(
        f"model: {args.model} ({alone['parameters']:,} parameters, all trained, float32); "
        f"{args.steps} steps of {args.items_per_step} builtin items"
    )
    print(
        "memory in MiB: AdamW state held; resident before training, its peak while "
        "training, and the process's peak (loading included)"
    )
    for label, reports in runs.items():
        print(f"  {label}")
        for report in reports:
            before, peak = report["rss_before_training_bytes"], report["peak_rss_training_bytes"]
            print(
                f"    rank {report['rank']}: AdamW {report['optimizer_state_bytes'] / mib:7.1f}, "
                f"RSS before {before / mib:7.1f}, while training {peak / mib:7.1f} "
                f"(+{(peak - before) / mib:.1f}), process peak "
                f"{report['peak_rss_bytes'] / mib:7.1f}; median step "
                f"{report['median_step_s']:.2f} s"
            )
    alone_growth = alone["peak_rss_training_bytes"] - alone["rss_before_training_bytes"]
    for label, reports in runs.items():
        if label == "1 process":
            continue
        largest = max(report["optimizer_state_bytes"] for report in reports)
        growth = max(
            report["peak_rss_training_bytes"] - report["rss_before_training_bytes"]
            for report in reports
        )
        print(
            f"{label}: largest AdamW share {largest / alone['optimizer_state_bytes']:.3f} "
            f"of one process's (ideal {1 / args.processes:.3f}); largest memory growth "
            f"while training {growth / alone_growth:.3f} of one process's"
        )


if __name__ == "__main__":
    main()
