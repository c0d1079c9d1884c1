"""AdamW parameter groups: weight decay skips biases and norms; a front-end may learn slower."""

from __future__ import annotations

import pytest
from torch import nn

from lightning_module.training.optim import adamw_warmup_cosine


def _net() -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Linear(4, 2))


def test_one_rate_keeps_the_two_groups_older_checkpoints_resume_into() -> None:
    net = _net()
    optimizer = adamw_warmup_cosine(net.named_parameters(), 1e-3, 0.01, 0.1, 100)["optimizer"]
    decayed, plain = optimizer.param_groups
    assert {id(p) for p in decayed["params"]} == {id(net[0].weight), id(net[2].weight)}
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert decayed["lr"] == plain["lr"]  # the warm-up scales both alike


def test_scaled_parameters_get_their_fraction_of_the_rate_through_the_schedule() -> None:
    net = _net()
    scales = {id(p): 0.1 for p in net[0].parameters()}
    configured = adamw_warmup_cosine(net.named_parameters(), 1e-3, 0.01, 0.1, 100, scales)
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert len(optimizer.param_groups) == 4
    for _ in range(30):  # past the warm-up, into the cosine
        optimizer.step()
        scheduler.step()
    rate = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    assert rate[id(net[0].weight)] == pytest.approx(0.1 * rate[id(net[2].weight)])
    assert rate[id(net[0].bias)] == pytest.approx(0.1 * rate[id(net[1].weight)])
