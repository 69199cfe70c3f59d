"""The step-by-step side of `loss_spike` (:mod:`tripwire.callbacks.torch.spike`), in device tensors
and in host floats (a model on the CPU), against a plain-Python reference of the same judgement:
the same verdict at every step, the same largest z, and the properties that make it robust (a spike
stays out of the history; a lasting shift is learnt)."""

from __future__ import annotations

import math
import statistics

import pytest

torch = pytest.importorskip("torch")

from tripwire.callbacks.torch.spike import (
    REFRESH,
    SCALE_FLOOR,
    HostSpikeSeries,
    SpikeProbe,
    SpikeSeries,
    global_grad_norm,
)
from tripwire.stats import Need

pytestmark = pytest.mark.torch

KINDS = pytest.mark.parametrize("kind", [SpikeSeries, HostSpikeSeries], ids=["device", "host"])
CPU = torch.device("cpu")


def reference(values, window, warmup, limit):
    """The judgement in plain Python: verdicts and z per step (None: not judged yet)."""
    ring, shift, scale_inv, out = [math.nan] * window, -math.inf, 0.0, []
    for i, value in enumerate(values):
        x = math.log(value) if value > 0 else math.nan
        z = shift + x * scale_inv if not math.isnan(x) else math.nan
        spike = not math.isnan(x) and z > limit
        ring[i % window] = math.nan if spike or math.isnan(x) else x
        out.append((spike, z))
        if (i + 1) % REFRESH == 0:
            kept = [v for v in ring if not math.isnan(v)]
            if len(kept) >= warmup:
                median = statistics.median_low(kept) if len(kept) % 2 == 0 else statistics.median(kept)
                mad = statistics.median_low([abs(v - median) for v in kept]) if len(kept) % 2 == 0 else \
                    statistics.median([abs(v - median) for v in kept])
                largest = statistics.NormalDist().inv_cdf(1 - 1 / (len(kept) + 1))  # expected, of n normals
                scale = max(mad * 1.4826, (max(kept) - median) / largest, SCALE_FLOOR)
                shift, scale_inv = -median / scale, 1 / scale
            else:
                shift, scale_inv = -math.inf, 0.0
    return out


def series_of(seed, n=300, spikes=(), shift_at=None):
    g = torch.Generator().manual_seed(seed)
    values = (1.0 + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)).abs().tolist()
    for i in spikes:
        values[i] *= 50
    if shift_at is not None:
        values[shift_at:] = [v * 5 for v in values[shift_at:]]
    return values


@KINDS
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_judgement_matches_the_reference(kind, seed):
    values = series_of(seed, spikes=(100, 101, 180))
    series = kind(window=64, warmup=32, limit=6.0, device=CPU)
    got = [(bool(series.judge(torch.tensor(v, dtype=torch.float32), i)), float(series.max_z))
           for i, v in enumerate(values)]
    want = reference(values, 64, 32, 6.0)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [i for i, (s, _) in enumerate(got) if s] == [100, 101, 180]
    finite = [z for _, z in want if math.isfinite(z)]
    assert got[-1][1] == pytest.approx(max(finite), rel=1e-4)


@KINDS
def test_a_spike_stays_out_of_the_history(kind):
    """A burst of spikes does not raise the bar: the last one of a burst is caught like the first."""
    values = series_of(3, spikes=range(100, 110))
    series = kind(window=64, warmup=32, limit=6.0, device=CPU)
    flags = [bool(series.judge(torch.tensor(v), i)) for i, v in enumerate(values)]
    assert [i for i, f in enumerate(flags) if f] == list(range(100, 110))


@KINDS
def test_a_lasting_shift_is_learnt_and_no_longer_skipped(kind):
    values = series_of(4, shift_at=100)
    series = kind(window=64, warmup=32, limit=6.0, device=CPU)
    flags = [bool(series.judge(torch.tensor(v), i)) for i, v in enumerate(values)]
    spiking = [i for i, f in enumerate(flags) if f]
    assert spiking[0] == 100 and len(spiking) <= 64 - 32 + REFRESH and not any(flags[200:])


@KINDS
def test_no_verdict_before_the_warm_up_and_none_for_a_value_without_logarithm(kind):
    series = kind(window=16, warmup=16, limit=6.0, device=CPU)
    early = [bool(series.judge(torch.tensor(1000.0 if i == 10 else 1.0), i)) for i in range(16)]
    assert not any(early)
    later = [bool(series.judge(torch.tensor(v), 16 + i)) for i, v in enumerate([0.0, -1.0, math.nan, math.inf])]
    assert later == [False, False, False, False]


def test_both_flush_the_same_values_and_keep_the_same_history():
    values = series_of(6, spikes=(90,), n=100)
    device, host = SpikeSeries(32, 16, 6.0, CPU), HostSpikeSeries(32, 16, 6.0)
    for i, v in enumerate(values):
        device.judge(torch.tensor(v), i)
        host.judge(torch.tensor(v), i)
    assert device.take().tolist() == pytest.approx(host.take().tolist(), rel=1e-5)
    d, h = device.state_dict(), host.state_dict()
    assert d["ring"] == pytest.approx(h["ring"], rel=1e-5, nan_ok=True) and d["written"] == h["written"] == 100


def test_the_probe_judges_on_the_host_for_a_model_on_the_cpu():
    probe = SpikeProbe([Need("spike_count", (("series", "loss"),))])
    probe.allocate(CPU)
    assert [type(s) for s in probe.series.values()] == [HostSpikeSeries]


def test_the_history_survives_a_state_dict_round_trip():
    need = Need("spike_count", (("series", "loss"), ("window", 32), ("warmup", 16)))
    first, second = SpikeProbe([need]), SpikeProbe([need])
    first.allocate(torch.device("cpu"))
    for i, v in enumerate(series_of(5, n=40)):
        first.add_loss(torch.tensor(v))
        first.judge(i)
    second.load_state_dict(first.state_dict())
    second.allocate(torch.device("cpu"))
    for probe in (first, second):
        probe.add_loss(torch.tensor(60.0))
    assert bool(first.judge(40)) and bool(second.judge(40))


def test_global_grad_norm_is_the_norm_over_every_gradient():
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    net(torch.randn(5, 4)).square().sum().backward()
    want = torch.cat([p.grad.flatten() for p in net.parameters()]).norm()
    assert torch.allclose(global_grad_norm(opt), want)
    opt.zero_grad()
    assert global_grad_norm(opt) is None
