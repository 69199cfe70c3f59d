"""Squeeze-excitation gates: the ReLU of a sigmoid-gated block on a pooled map is not judged
for dead units; every other ReLU is, 1x1 maps included.

An SE gate's squeeze units see one average per image; their sign hardly changes between images,
so about half are off from initialization and stay off in healthy MobileNetV3-style training
(measured: 9 of 12 units of the first block's gate for 400 steps, loss falling). The last stage of
an ImageNet-style CNN on small images is a 1x1 map too, and its units dying (a learning rate x100)
is what dead_relu is for.
"""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch import nn

from lightning_kit import Task, blobs, fit, images, loader, mlp, tripwire

pytestmark = pytest.mark.torch

DEAD = {"interval": 5, "rules": {"dead_relu": {}}}


class Gated(nn.Module):
    """conv-ReLU features, scaled per channel by a squeeze-excitation block; a 1x1 conv stage; a head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.relu = nn.ReLU()
        self.se = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1), nn.Sigmoid())
        self.last = nn.Sequential(nn.Conv2d(16, 16, 8), nn.ReLU())  # a last stage at 1x1 resolution
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv(x))
        h = h * self.se(h.mean((2, 3), keepdim=True))
        return self.head(self.last(h).flatten(1))


@pytest.mark.parametrize(("dead", "fires"), [(None, None), ("se.0", None), ("conv", "relu"), ("last.0", "last.1")])
def test_dead_units_count_everywhere_but_in_a_squeeze_excitation_gate(dead, fires):
    torch.manual_seed(0)
    net = Gated()
    if dead is not None:
        with torch.no_grad():
            net.get_submodule(dead).bias.fill_(-20.0)  # every unit of the ReLU after it is off
    cb = fit(Task(net, lr=0.01, optimizer="adam"), loader(*images(n=512)), callback=tripwire(DEAD), max_steps=40)
    found = {f.subject.removeprefix("net.") for f in cb.findings if f.rule == "dead_relu"}
    assert (fires in found) if fires else not found, found  # (a dead stage may take the next one along)


@pytest.mark.parametrize(("act", "fires"), [(nn.Hardswish, True), (nn.ReLU6, True), (nn.LeakyReLU, False),
                                            (nn.ELU, False)])
def test_units_die_where_the_activation_is_flat_zero(act, fires):
    # hard-swish is 0 below -3 (MobileNetV3's main path): a unit pushed there passes no gradient;
    # LeakyReLU and ELU keep a gradient for negative inputs, so their units cannot die
    torch.manual_seed(0)
    net = mlp(act=act, dead=0)
    cb = fit(Task(net, lr=0.01, optimizer="adam"), loader(*blobs(n=512)), callback=tripwire(DEAD), max_steps=30)
    assert any(f.rule == "dead_relu" for f in cb.findings) == fires
