"""How far each registered method moves the conformance battery's toy model: the relative
rise of the forget records' mean NLL, fully trained and with LoRA, against the battery's
threshold (``conformance.MIN_FORGET_NLL_RISE``), and the same for gradient ascent at an lr
so small that its updates barely reach the model (a control that must fail the check).

    python benchmarks/conformance_margins.py
"""

from __future__ import annotations

import platform
import sys


def main() -> None:
    import torch

    from pytest_unlearn.conformance import MIN_FORGET_NLL_RISE, TOY_OVERRIDES, run_method
    from pytest_unlearn.registry import MethodRegistry

    torch.set_num_threads(1)
    registry = MethodRegistry.from_entry_points()
    print(f"command: python benchmarks/conformance_margins.py {' '.join(sys.argv[1:])}")
    print(
        f"machine: {platform.machine()}, Python {platform.python_version()}, torch "
        f"{torch.__version__}; toy training {TOY_OVERRIDES}"
    )
    print(f"threshold: forget NLL rise >= {MIN_FORGET_NLL_RISE:.1e} of its value")
    rows = [
        (name, registry.get(name), {}) for name in registry.names() if registry.get(name).unlearns
    ]
    rows.append(
        ("gradient_ascent at lr 1e-9 (control)", registry.get("gradient_ascent"), {"lr": 1e-9})
    )
    smallest = None
    for label, method, overrides in rows:
        rises = {}
        for kind in ("full", "lora"):
            run = run_method(method, kind, overrides=overrides)
            rises[kind] = run.forget_nll_after / run.forget_nll_before - 1
        verdict = "passes" if min(rises.values()) >= MIN_FORGET_NLL_RISE else "FAILS"
        print(f"  {label:40s} full {rises['full']:+.2e}  lora {rises['lora']:+.2e}  {verdict}")
        if not overrides:
            smallest = min(smallest or float("inf"), *rises.values())
    print(
        f"smallest rise of a built-in method: {smallest:+.2e} "
        f"({smallest / MIN_FORGET_NLL_RISE:.1f}x the threshold)"
    )


if __name__ == "__main__":
    main()
