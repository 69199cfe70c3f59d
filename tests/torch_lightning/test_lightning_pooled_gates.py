"""Squeeze-excitation gates: a ReLU on a globally pooled map is not judged for dead units.

An SE gate's reduce units see one average per image; their sign hardly changes between images,
so about half are off from initialization and stay off in healthy MobileNetV3-style training
(measured: 9 of 12 units of the first block's gate for 400 steps, loss falling). The ReLUs of the
main path are judged as before.
"""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch import nn

from lightning_kit import Task, fit, images, loader, tripwire

pytestmark = pytest.mark.torch

DEAD = {"interval": 5, "rules": {"dead_relu": {}}}


class Gated(nn.Module):
    """conv-ReLU features scaled per channel by a squeeze-excitation gate, and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.relu = nn.ReLU()
        self.reduce, self.gate_relu, self.expand = nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv(x))
        gate = torch.sigmoid(self.expand(self.gate_relu(self.reduce(h.mean((2, 3), keepdim=True)))))
        return self.head((h * gate).mean((2, 3)))


@pytest.mark.parametrize("dead", ["gate", "main"])
def test_dead_units_count_on_the_main_path_only(dead):
    torch.manual_seed(0)
    net = Gated()
    with torch.no_grad():
        (net.reduce if dead == "gate" else net.conv).bias.fill_(-20.0)  # every unit of that ReLU off
    cb = fit(Task(net, lr=0.01, optimizer="adam"), loader(*images(n=512)), callback=tripwire(DEAD), max_steps=40)
    assert [f.subject for f in cb.findings if f.rule == "dead_relu"][:1] == ([] if dead == "gate" else ["net.relu"])
