"""Judging general-task scores against the suite's thresholds file."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data import read_utf8
from .errors import UnlearnError

THRESHOLD_KEYS = ("min_score", "max_drop")


@dataclass(frozen=True)
class GeneralResult:
    task: str
    score: float
    reference_score: float
    n: int
    min_score: float | None
    max_drop: float | None
    # The standard error of the drop, from lm-eval's standard errors of the two scores
    # (taken as independent, which overstates it for the same documents); None if missing.
    drop_stderr: float | None = None

    @property
    def drop(self) -> float:
        """How much the score fell from the reference (negative: it rose)."""
        return self.reference_score - self.score

    @property
    def problems(self) -> list[str]:
        found = []
        if self.min_score is not None and not self.score >= self.min_score:
            found.append(f"score {self.score:.4f} is below the minimum {self.min_score}")
        if self.max_drop is not None and not self.drop <= self.max_drop:
            found.append(
                f"score {self.score:.4f} dropped {self.drop:.4f} from the reference "
                f"{self.reference_score:.4f}, more than {self.max_drop}"
            )
        return found

    @property
    def passed(self) -> bool:
        return not self.problems

    def explain(self) -> str:
        text = f"{self.task} (acc over {self.n} documents): " + "; ".join(self.problems)
        if (
            self.drop_stderr is not None
            and self.max_drop is not None
            and self.drop - self.max_drop < 2 * self.drop_stderr
        ):
            text += (
                f" (the drop's standard error is {self.drop_stderr:.4f}: within two of "
                "the limit, it may be sampling noise; score more documents)"
            )
        return text


@functools.lru_cache(maxsize=8)
def load_thresholds(path: Path) -> dict[str, dict[str, float | None]]:
    """Read a thresholds file: task -> {min_score, max_drop}; bad entries name the task."""
    import yaml

    if not path.is_file():
        raise UnlearnError(
            f"general-task thresholds file {path} does not exist; create it with "
            "one entry per task: {min_score: ..., max_drop: ...}"
        )
    try:
        content = yaml.safe_load(read_utf8(path))
    except yaml.YAMLError as error:
        raise UnlearnError(f"{path}: not valid YAML: {error}") from None
    if content is None:
        content = {}  # an empty file: each task's test says it has no thresholds
    if not isinstance(content, dict):
        raise UnlearnError(
            f"{path}: expected a mapping of task names to thresholds, got {type(content).__name__}"
        )
    for task, entry in content.items():
        if not isinstance(entry, dict) or set(entry) != set(THRESHOLD_KEYS):
            raise UnlearnError(
                f"{path}: task {task!r} needs a mapping with exactly "
                f"{' and '.join(THRESHOLD_KEYS)} (null for no limit), got "
                f"{entry!r}"
            )
        for key, value in entry.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UnlearnError(f"{path}: {task}.{key} must be a number or null, got {value!r}")
            if not 0 <= value <= 1:
                raise UnlearnError(
                    f"{path}: {task}.{key} = {value!r} is outside [0, 1]: scores "
                    "and drops are fractions of accuracy (0.05 = five points)"
                )
    return content


def judge(
    task: str,
    score: dict[str, Any],
    reference: dict[str, Any],
    thresholds: dict[str, dict[str, float | None]],
) -> GeneralResult:
    if task not in thresholds:
        raise UnlearnError(
            f"no thresholds for general task {task!r}; add it to the thresholds "
            f"file (tasks there: {', '.join(thresholds)})"
        )
    entry = thresholds[task]
    value, reference_value = float(score["value"]), float(reference["value"])
    if math.isnan(value) or math.isnan(reference_value):
        raise UnlearnError(f"general task {task!r} produced no score (NaN)")
    errors = [
        error
        for error in (score.get("stderr"), reference.get("stderr"))
        if isinstance(error, (int, float)) and math.isfinite(error)
    ]
    drop_stderr = math.hypot(*errors) if len(errors) == 2 else None
    return GeneralResult(
        task,
        value,
        reference_value,
        int(score["n"]),
        entry.get("min_score"),
        entry.get("max_drop"),
        drop_stderr,
    )
