"""`reduce_lr`'s scale on the learning rates (:mod:`tripwire.callbacks.torch.lr_scale`): the optimizer
steps with the scheduler's rate times the scale, whatever the scheduler, and the scheduler keeps
computing from its own rates (a closed-form one is not overwritten, a chainable one not compounded)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tripwire.callbacks.torch.lr_scale import LrScale

pytestmark = pytest.mark.torch

SCHEDULERS = {
    "step": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5),  # chainable
    "exponential": lambda opt: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9),  # chainable
    "cosine": lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=20),
    "lambda": lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 / (1 + step)),
    "onecycle": lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=30),
}


def rates(make_scheduler, reduce_at: int | None, factor: float = 0.25, min_lr: float = 0.0, steps: int = 20):
    """The rate each optimizer step used, with a reduction before step ``reduce_at`` (None: none)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    scheduler = make_scheduler(opt)
    used: list[float] = []
    scale = LrScale()
    scale.attach([opt])
    for step in range(steps):
        if step == reduce_at:
            scale.reduce(factor, min_lr)
        net(torch.ones(2, 3)).sum().backward()
        before = [p.detach().clone() for p in net.parameters()]
        grads = [p.grad.clone() for p in net.parameters()]
        opt.step()
        used.append(float((before[0] - net.weight.detach())[0, 0] / grads[0][0, 0]))  # SGD: w -= lr * g
        opt.zero_grad()
        scheduler.step()
    scale.detach()
    return used


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_the_optimizer_steps_with_the_schedulers_rate_times_the_scale(name):
    plain = rates(SCHEDULERS[name], reduce_at=None)
    scaled = rates(SCHEDULERS[name], reduce_at=5)
    assert scaled[:5] == pytest.approx(plain[:5], rel=1e-3)  # rates read back from float32 weights
    assert scaled[5:] == pytest.approx([0.25 * lr for lr in plain[5:]], rel=1e-3)


def test_no_rate_is_lowered_below_min_lr_nor_raised_to_it():
    plain = rates(SCHEDULERS["exponential"], reduce_at=None)
    floored = rates(SCHEDULERS["exponential"], reduce_at=2, min_lr=0.2)
    assert floored[2:] == pytest.approx([max(0.25 * lr, min(lr, 0.2)) for lr in plain[2:]], rel=1e-3)
    assert floored[5] == pytest.approx(0.2, rel=1e-3)  # 0.25 x 0.59 is below the floor
    assert floored[-1] == pytest.approx(plain[-1], rel=1e-3) and plain[-1] < 0.2  # below it by itself


def test_the_scale_survives_a_state_dict_round_trip():
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    first = LrScale()
    first.attach([opt])
    assert first.reduce(0.5, 0.0) == (1.0, 0.5)
    first.detach()
    resumed = LrScale()
    resumed.load_state_dict(first.state_dict())
    resumed.attach([opt])  # hooked at once: the scale is not 1
    assert resumed.reduce(0.5, 0.0) == (0.5, 0.25)
    resumed.detach()
    assert opt.param_groups[0]["lr"] == 1.0


def test_nothing_is_hooked_until_the_first_reduction():
    opt = torch.optim.SGD(torch.nn.Linear(3, 1).parameters(), lr=1.0)
    scale = LrScale()
    scale.attach([opt])
    assert not opt._optimizer_step_pre_hooks and not scale._handles
