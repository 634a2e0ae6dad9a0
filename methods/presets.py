"""Learning rates of the built-in methods for the tiny model.

The paper's settings are for a LoRA adapter on a 7B model; learning rates do not transfer
to the fully trained 1.4M-parameter tiny model, and they have cliffs there. The protocol,
run with ``benchmarks/sweep.py`` on the real KnowUnDo privacy data (docs/results.md):

1. Sweep gradient ascent's lr. The baseline lr is the smallest swept value at which
   gradient ascent reaches at least 90% Unlearn Success (the paper's gradient ascent
   reaches 96.6%). Measured on the project's current CPU: 7e-5 gives 59.1%, 1e-4 gives
   96.4% (69.1% and 98.2% on its previous CPU: the same lr either way).
2. Every baseline uses that lr, as all of the paper's baselines share one lr (5e-5).
3. MemFlex keeps the paper's ratio to the baselines: 3e-4 / 5e-5 = 6 times the baseline lr.
"""

TINY_BASELINE_LR = 1e-4
TINY_MEMFLEX_LR = 6e-4  # 6 x TINY_BASELINE_LR
