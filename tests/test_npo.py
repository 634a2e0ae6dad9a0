"""NPO's loss, and NPO+RT (the retain term) through the conformance battery."""

import torch

from pytest_unlearn.conformance import MethodConformance
from pytest_unlearn_methods.npo import Npo, npo_loss


def test_npo_loss_is_gradient_ascent_at_the_start_and_fades_as_items_are_forgotten():
    logprob = torch.tensor([-5.0, -5.0, -50.0], requires_grad=True)
    reference = torch.tensor([-5.0, -5.0, -5.0])
    npo_loss(logprob, reference, beta=0.1).sum().backward()
    # d loss / d log p = 2 sigmoid(beta * (log p - log p_ref)): 1 where nothing changed yet
    # (gradient ascent's gradient), near 0 for an item already far below the reference.
    assert torch.allclose(logprob.grad[:2], torch.ones(2))
    assert 0 < logprob.grad[2] < 0.03


def test_npo_loss_value():
    loss = npo_loss(torch.tensor([-3.0]), torch.tensor([-1.0]), beta=0.5)
    expected = -(2 / 0.5) * torch.nn.functional.logsigmoid(torch.tensor([1.0]))
    assert torch.allclose(loss, expected)


class TestNpoWithRetainTerm(MethodConformance):
    method_under_test = Npo
    overrides = {"retain_weight": 1.0}
