"""One GPU per pytest-xdist worker.

Under ``pytest -n N`` each worker process (``gw0``, ``gw1``, ...) builds and scores its own
models. With several GPUs, worker ``gwK`` is given the (K mod G)-th of the G visible GPUs
through ``CUDA_VISIBLE_DEVICES``, set in ``pytest_configure`` of the worker, before torch is
imported (the plugin imports torch only inside fixtures). ``--unlearn-worker-gpus`` says
which GPUs: ``auto`` (those in ``CUDA_VISIBLE_DEVICES``, else those ``nvidia-smi -L``
lists), ``off``, or a comma-separated list of GPU ids.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import MutableMapping

from .errors import UnlearnError


def visible_gpus(environ: MutableMapping[str, str]) -> list[str]:
    """The GPU ids a process may use, without importing torch."""
    listed = environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [match.group(1) for match in re.finditer(r"^GPU (\d+):", output, re.MULTILINE)]


def pin_worker_gpu(worker_id: str, setting: str,
                   environ: MutableMapping[str, str] = os.environ) -> str | None:
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
            raise UnlearnError(f"--unlearn-worker-gpus={setting!r}: give 'auto', 'off' or a "
                               "comma-separated list of GPU ids, e.g. 0,1,2,3")
    if not gpus:
        return None
    gpu = gpus[int(match.group(1)) % len(gpus)]
    environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu
