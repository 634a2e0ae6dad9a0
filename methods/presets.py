"""Learning rates of the built-in methods for the tiny model.

The paper's settings are for a LoRA adapter on a 7B model; learning rates do not transfer
to the fully trained 1.4M-parameter tiny model, and they have cliffs there. So every
method's lr for the tiny model is the choice of the project's fair tuning protocol
(``benchmarks/tune.py``, docs/tuning.md): the same grid (1e-4, 3e-4, 1e-3) for every
method, on a dev split of the real KnowUnDo privacy data's train records (seeded, by
person; the val items are not looked at), and the same rule: the best dev Avg Success
(token share, the paper's criterion) among the grid points whose dev Retention Success
keeps at least 0.9 x the vanilla model's, else the best Avg Success; on a tie the smaller
lr. The run, its grid and every dev figure: ``methods/tuned/tiny-privacy.yaml`` (an
--unlearn-config file) and docs/tuning-tiny-privacy.md; ``tests/test_tune.py`` checks
that the values below are that file's.

Before the protocol the defaults came from one rule for every baseline (the smallest lr
at which gradient ascent forgot 90% of the unlearn items whole-answer: 1e-4) and 6 x that
for MemFlex (the paper's ratio 3e-4 / 5e-5): ``git show 5bba193:methods/presets.py``.
The protocol kept 1e-4 for six methods and moved GA+GD ID and GA+KL ID to 3e-4 and
MemFlex (with its ablation controls, which share its lr) from 6e-4 to 1e-3.
"""

TINY_LR: dict[str, float] = {
    "gradient_ascent": 1e-4,
    "random_labels": 1e-4,
    "adversarial": 1e-4,
    "ga_gd_id": 3e-4,
    "ga_gd_ood": 1e-4,
    "ga_kl_id": 3e-4,
    "ga_kl_ood": 1e-4,
    "npo": 1e-4,
    "memflex": 1e-3,
}
