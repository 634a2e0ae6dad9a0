"""benchmarks/gpu_issue22.py rehearsed on a CPU (its cpu-test profile: the tiny model, 4
persons of the builtin data, one grid point), so that GPU minutes go to measuring: every
step runs to its end and writes what the GPU run would bring back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_script_runs_every_step_and_writes_its_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/gpu_issue22.py",
            "--profile=cpu-test",
            f"--out={out}",
            f"--cache-dir={tmp_path / 'cache'}",
            "--budget=3000",  # an upper limit: on a quiet CPU it takes under a minute
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((out / "summary.json").read_text())
    steps = {step["step"]: step["status"] for step in summary["steps"]}
    # pytest exits 1 when item tests fail (the vanilla model fails every forget test).
    assert steps == {"inject": "exit 1", "tune": "exit 0", "fidelity": "exit 0"}, summary
    assert (out / "data" / "SOURCE.txt").read_text().startswith("builtin:privacy, 4 persons")
    [injection] = (out / "tiny").glob("injection-*.json")
    shares = json.loads(injection.read_text())["exact_share_by_scope"]
    assert set(shares) == {"unlearn", "retention", "general"}
    vanilla = json.loads((out / "tiny" / "vanilla.json").read_text())
    assert [row["method"] for row in vanilla["rows"]] == ["none"]
    tuned = yaml.safe_load((out / "tiny" / "tuned.yaml").read_text())
    assert tuned == {"gradient_ascent": {"lr": 1e-4}}
    tuning = (out / "tiny" / "tuning.md").read_text()
    assert "| gradient_ascent | 0.0001* |" in tuning
    fidelity = (out / "tiny" / "fidelity.md").read_text()
    assert "| gradient_ascent |" in fidelity
    assert "| tiny | fidelity | exit 0 |" in (out / "summary.md").read_text()
