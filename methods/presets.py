"""Learning rates of the built-in methods for the tiny model.

The paper's settings are for a LoRA adapter on a 7B model; learning rates do not transfer
to the fully trained 1.4M-parameter tiny model, and they have cliffs there. The protocol,
run with ``benchmarks/sweep.py`` on the real KnowUnDo privacy data (docs/results.md):

1. Sweep gradient ascent's lr. The baseline lr is the smallest swept value at which
   gradient ascent reaches at least 90% Unlearn Success under the token share (the
   reference's figure, in which the paper's gradient ascent reaches 96.6%; the sweep prints
   it as "UL token share").
2. Every baseline uses that lr, as all of the paper's baselines share one lr (5e-5).
3. MemFlex keeps the paper's ratio to the baselines: 3e-4 / 5e-5 = 6 times the baseline lr.

The values below were found when step 1 read the whole-answer pass rate instead (the
smallest lr with at least 90% of the unlearn items not recalled in full: 1e-4, 96.4%; 7e-5
gave 59.1%). Under the token-share rule they are not re-measured: at 1e-4 gradient
ascent's token-share Unlearn Success is 25.8% (docs/results-privacy-tiny.json), below 90%,
so the rule asks for a larger lr than 1e-4 (the next swept value, 2e-4, was measured under
whole-answer only: 100% / 0%).

The fair protocol (``benchmarks/tune.py``, docs/tuning.md), run on the real privacy data,
chose these values for six of the nine methods and larger ones for GA+GD ID and GA+KL ID
(3e-4) and MemFlex (1e-3): ``methods/tuned/tiny-privacy.yaml``, an --unlearn-config file.
The defaults stay until every published figure is re-run with the tuned values.
"""

TINY_BASELINE_LR = 1e-4
TINY_MEMFLEX_LR = 6e-4  # 6 x TINY_BASELINE_LR
