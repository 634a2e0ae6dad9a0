"""One GPU per pytest-xdist worker.

Under ``pytest -n N`` each worker process (``gw0``, ``gw1``, ...) builds and scores its own
models. With several GPUs, worker ``gwK`` is given the (K mod G)-th of the G visible GPUs
through ``CUDA_VISIBLE_DEVICES``, set in ``pytest_configure`` of the worker, before torch is
imported (the plugin imports torch only inside fixtures). ``--unlearn-worker-gpus`` says
which GPUs: ``auto`` (those in ``CUDA_VISIBLE_DEVICES``, else those ``nvidia-smi -L``
lists), ``off``, or a comma-separated list of GPU ids.

The workers also share the CPU cores: each gets an equal share as torch threads
(``OMP_NUM_THREADS``, unless it is set already). With torch's default of one thread per core
in every worker, N workers run N times too many threads, and their waits on each other's
descheduled threads cost far more than the threads give (two workers on 2 cores: 8x slower
training, measured on the conformance battery).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import MutableMapping

from .errors import UnlearnError


def visible_gpus(environ: MutableMapping[str, str]) -> list[str]:
    """The GPU ids a process may use, without importing torch."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [match.group(1) for match in re.finditer(r"^GPU (\d+):", output, re.MULTILINE)]


def pin_worker_gpu(
    worker_id: str, setting: str, environ: MutableMapping[str, str] = os.environ
) -> str | None:
    """Set ``CUDA_VISIBLE_DEVICES`` for xdist worker ``worker_id``; return the GPU given
    (None when there is nothing to pin)."""
    if setting == "off":
        return None
    match = re.fullmatch(r"gw(\d+)", worker_id)
    if match is None:
        return None
    if setting == "auto":
        gpus = visible_gpus(environ)
    else:
        gpus = [gpu.strip() for gpu in setting.split(",") if gpu.strip()]
        if not gpus or not all(re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+", gpu) for gpu in gpus):
            raise UnlearnError(
                f"--unlearn-worker-gpus={setting!r}: give 'auto', 'off' or a "
                "comma-separated list of GPU ids, e.g. 0,1,2,3"
            )
    if not gpus:
        return None
    gpu = gpus[int(match.group(1)) % len(gpus)]
    environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu


def share_cpu_threads(
    worker_count: int, environ: MutableMapping[str, str] = os.environ, cpus: int | None = None
) -> int | None:
    """Give one of ``worker_count`` xdist workers its share of the CPU cores as torch threads
    (``OMP_NUM_THREADS``); return the number set, or None when the user set it already or
    there is one worker."""
    if worker_count <= 1 or "OMP_NUM_THREADS" in environ:
        return None
    if cpus is None:
        cpus = (
            len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count() or 1
        )
    threads = max(1, cpus // worker_count)
    environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")  # imported already (by a conftest): tell it directly
    if torch is not None and environ is os.environ:
        torch.set_num_threads(threads)
    return threads
