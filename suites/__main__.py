"""``python -m pytest_unlearn_suites``: the folder of the installed suites, for their files
(``release-gate.yaml``, ``gate.yaml``, ``general/thresholds.yaml``)."""

from pathlib import Path

print(Path(__file__).resolve().parent)
