"""The weight snapshot keeps a bounded sample of each large tensor, and its estimates stay close."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tripwire.callbacks.torch.element_sample import SNAPSHOT_ELEMENTS, ElementSample
from tripwire.callbacks.torch.params import ParamProbe
from tripwire.stats import Need

NEEDS = [Need("update_ratio"), Need("weight_unchanged")]


def _stats(probe: ParamProbe) -> dict:
    stats: dict = {}
    for piece in probe.pieces():
        stats.update(piece.read(piece.values.tolist()))
    return stats


def _sampled_steps(net: torch.nn.Module, probes: list[ParamProbe], steps: int, lr: float = 1e-3) -> list[list[dict]]:
    """Train ``net`` with Adam and sample every step with each probe; the statistics per step."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    out = []
    for _ in range(steps):
        x = torch.randn(32, net[0].in_features)
        net(x).square().mean().backward()
        for probe in probes:
            probe.before_step(opt)
        opt.step()
        opt.zero_grad()
        out.append([_stats(probe) for probe in probes])
    return out


def test_snapshot_memory_does_not_grow_with_the_layer():
    held = {}
    for width in (10_000, 20_000):  # a 10M- and a 20M-parameter layer
        net = torch.nn.Sequential(torch.nn.Linear(1000, width), torch.nn.Linear(width, 1))
        probe = ParamProbe(net, NEEDS)
        _sampled_steps(net, [probe], steps=2)
        held[width] = probe.held_bytes()
    model_bytes = (1000 * 10_000 + 10_000 + 10_000 + 1) * 4
    assert held[10_000] == held[20_000]  # bounded by the number of tensors, not their size
    per_tensor = SNAPSHOT_ELEMENTS * (4 + 8) + 4  # float32 values, an int64 index, a norm
    assert held[10_000] <= 4 * per_tensor
    assert held[10_000] < model_bytes / 100


def test_sampled_update_ratio_is_close_to_the_exact_one():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.ReLU(), torch.nn.Linear(512, 8))
    sampled, exact = ParamProbe(net, NEEDS), ParamProbe(net, NEEDS)
    exact.elements = ElementSample(cap=10 ** 9)
    steps = _sampled_steps(net, [sampled, exact], steps=6)
    errors = []
    for estimate, truth in steps[1:]:
        for name, value in truth["update_ratio"].items():
            errors.append(abs(estimate["update_ratio"][name] / value - 1))
            if net.get_parameter(name).numel() <= SNAPSHOT_ELEMENTS:
                assert estimate["update_ratio"][name] == pytest.approx(value, rel=1e-6)  # kept whole: exact
    assert max(errors) < 0.06, errors  # 1/sqrt(4096) = 1.6% expected
    assert max(errors) > 0  # the 512 x 512 weight really was sampled


def test_sampled_unchanged_tells_a_frozen_large_tensor_from_a_moving_one():
    net = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.Linear(256, 4))
    probe = ParamProbe(net, NEEDS)
    opt = torch.optim.SGD([{"params": net[0].parameters(), "lr": 0.0}, {"params": net[1].parameters(), "lr": 0.1}])
    flags = []
    for _ in range(3):
        net(torch.randn(16, 256)).square().mean().backward()
        probe.before_step(opt)
        opt.step()
        opt.zero_grad()
        flags.append(_stats(probe).get("weight_unchanged", {}))
    assert probe.elements.sampled([net[0].weight]) == [True]
    assert flags[-1]["0.weight"] == 1.0 and flags[-1]["0.bias"] == 1.0
    assert flags[-1]["1.weight"] == 0.0 and flags[-1]["1.bias"] == 0.0


def test_the_sample_covers_the_tensor_evenly_and_is_the_same_everywhere():
    sample = ElementSample(cap=100)
    index = sample.index(10_000, torch.device("cpu"))
    assert index.unique().numel() == 100
    strata = index // 100
    assert strata.tolist() == list(range(100))  # one element per stratum of 100
    assert ElementSample(cap=100).index(10_000, torch.device("cpu")).equal(index)  # seeded by the size
    with pytest.raises(ValueError, match="at least 1"):
        ElementSample(cap=0)
