"""Gradient-size rules judge weight matrices and kernels, not 1-D parameters (biases, norm scales/shifts)."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")
from torch import nn

from lightning_kit import Task, fit, images, loader, tripwire

pytestmark = pytest.mark.torch


class DoubleNorm(nn.Module):
    """A CNN whose first BatchNorm feeds a second one: the second normalizes the first's scale and
    shift away, so their gradients are ~0 in perfectly healthy training (as a bias before BatchNorm)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.pre = nn.BatchNorm2d(8)
        self.norm = nn.BatchNorm2d(8)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.pre(self.conv(x))))


def test_norm_parameters_with_no_effect_on_the_loss_are_not_vanishing_gradients():
    torch.manual_seed(0)
    x, y = images()
    cb = tripwire(None, interval=5)
    cb.samples = []
    process = cb.monitor.process
    cb.monitor.process = lambda sample: (cb.samples.append(sample), process(sample))[1]
    fit(Task(DoubleNorm(), lr=0.05), loader(x, y), callback=cb, max_steps=40)
    grads = {k: v for s in cb.samples for k, v in (s.series("grad_abs_mean") or {}).items()}
    assert max(grads["net.pre.weight"], grads["net.pre.bias"]) < 1e-6  # tiny, as the docstring says
    shapes = next(s.series("param_ndim") for s in cb.samples if s.series("param_ndim"))
    assert shapes["net.pre.weight"] == 1 and shapes["net.conv.weight"] == 4
    assert not [f for f in cb.findings if f.rule in ("vanishing_gradient", "small_updates", "unchanged_tensor")]
    strict = tripwire({"rules": {"vanishing_gradient": {"include_biases": True, "patience": 1}}}, interval=5)
    fit(Task(DoubleNorm(), lr=0.05), loader(x, y), callback=strict, max_steps=40)
    assert "net.pre.weight" in (strict.findings[0].subject or "")  # the same run judged with the vectors in
