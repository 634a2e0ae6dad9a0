"""Quantization robustness (copyright): every unlearn val item asked again of the unlearned
model after its weights are quantized to 8 and to 4 bits (round-to-nearest, a scale per
group of 128 weights; ``pytest_unlearn/quantization.py``).

Unlearning that moved the weights less than a quantization step is undone by rounding
(Zhang et al. 2025). The pass rates are ``quant8_unlearn_success`` and
``quant4_unlearn_success`` in the summary (gateable). Run with ``-m quantized``.
"""

import pytest

from pytest_unlearn.assertions import explain, fail_item

pytestmark = [pytest.mark.quantized, pytest.mark.knowundo("copyright", scope="unlearn")]


@pytest.mark.quant8
def test_forgotten_at_8_bits(knowundo_item, quantized_score, recalls):
    if recalls(quantized_score):
        fail_item(explain(knowundo_item, quantized_score, "recalls again, quantized to 8 bits,"))


@pytest.mark.quant4
def test_forgotten_at_4_bits(knowundo_item, quantized_score, recalls):
    if recalls(quantized_score):
        fail_item(explain(knowundo_item, quantized_score, "recalls again, quantized to 4 bits,"))
