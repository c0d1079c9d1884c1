"""The distillation loss's temperature: softer targets, same optimum, T²-sized gradients."""

from __future__ import annotations

import pytest
import torch

from lightning_module.model.losses import MultiTaskLoss, masked_soft_cross_entropy


def test_temperature_softens_both_sides_and_keeps_the_teachers_order() -> None:
    teacher = torch.tensor([[0.90, 0.09, 0.01]])
    rows = torch.tensor([True])
    # The student that copies the teacher exactly is still the optimum at T = 2: its logits are
    # the teacher's log-probabilities, and the loss's gradient there is zero.
    logits = teacher.log().clone().requires_grad_(True)
    loss = masked_soft_cross_entropy(logits, teacher, rows, temperature=2.0)
    loss.backward()
    assert logits.grad.abs().max() < 1e-6
    # Away from it, the loss is T² times the cross-entropy of the softened distributions, where
    # the teacher's 0.09 class becomes ~0.23: what a student at T = 2 is asked to rank second.
    student = torch.tensor([[3.0, -1.0, 0.5]])
    softened = torch.softmax(teacher.log() / 2, -1)
    expected = -(softened * torch.log_softmax(student / 2, -1)).sum() * 4
    got = masked_soft_cross_entropy(student, teacher, rows, temperature=2.0)
    assert torch.allclose(got, expected) and softened[0, 1] > 0.2


def test_a_zero_teacher_probability_stays_zero_and_the_loss_is_finite() -> None:
    teacher = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    logits = torch.tensor([[2.0, -1.0], [0.0, 0.0]], requires_grad=True)
    loss = masked_soft_cross_entropy(logits, teacher, torch.tensor([True, True]), temperature=3.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # Temperature 1 is the plain cross-entropy.
    plain = -(teacher * torch.log_softmax(logits.detach(), -1)).sum(-1).mean()
    same = masked_soft_cross_entropy(logits.detach(), teacher, torch.tensor([True, True]))
    assert torch.allclose(plain, same)


def test_the_loss_refuses_a_temperature_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="distill_temperature"):
        MultiTaskLoss(distill_temperature=0.0)
