"""Never break the user's training: a failure inside tripwire's own instrumentation switches off
only the failing part of LightningTripwire, with one warning naming it; the model trains exactly
as it would without tripwire. With ``strict=True`` the failure reaches the user instead.

Each row of ``POINTS`` makes one of tripwire's own functions raise (from its ``after``-th call
on, counting from 0, ``times`` times or always) and names the part that must go off, a series
that must then be missing and one (from another part) that must still arrive.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

import tripwire as tw
from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire
from tripwire.callbacks.torch import activations as torch_activations
from tripwire.callbacks.torch import batch as torch_batch
from tripwire.callbacks.torch import collector as torch_collector
from tripwire.callbacks.torch import packing as torch_packing
from tripwire.callbacks.torch.activations import ActivationProbe
from tripwire.callbacks.torch.batch import ConfusionProbe, DataProbe
from tripwire.callbacks.torch.collector import TorchCollector
from tripwire.callbacks.torch.lightning import TripwireCallbackImpl
from tripwire.callbacks.torch.params import ParamProbe
from tripwire.observe import drain

pytestmark = pytest.mark.torch

MAX_STEPS = 6
CONFIG = {"interval": 1}  # the default rule set: every part of the collector has work to do


class Injected(RuntimeError):
    """The failure planted in tripwire's own code."""


class Observing(Task):
    """Reports a statistic of its own, so that user statistics have work to do too."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        tw.observe("loss_copy", loss)
        return loss


@dataclass(frozen=True)
class Point:
    """One instrumentation point: where to inject, the part that must go off, what must vanish
    (a series name, or ``(series, subject)``) and what must still arrive."""

    owner: object
    name: str
    part: str
    gone: str | tuple[str, str] | None
    kept: str | tuple[str, str] | None
    after: int = 0
    times: int | None = None
    only: str | None = None  # for _hook: the module whose hook fails

    def __str__(self) -> str:
        return self.part


POINTS = [
    Point(TorchCollector, "__init__", "statistics collector", None, None),
    Point(ParamProbe, "__init__", "parameter statistics", "grad_norm", "act_dead_frac"),
    Point(ActivationProbe, "_hook", "forward hook on module 'net.1'", ("act_dead_frac", "net.1"),
          ("act_dead_frac", "net.3"), only="net.1"),
    Point(torch_activations, "reduce_dims", "activation probe on module 'net.1'", ("act_dead_frac", "net.1"),
          ("act_dead_frac", "net.3"), times=1),  # its first call: net.1, the first ReLU of the forward
    Point(ActivationProbe, "allocate", "activation statistics", "act_dead_frac", "grad_norm"),
    Point(DataProbe, "_add", "data statistics", "label_count", "loss"),
    Point(ParamProbe, "before_step", "gradient statistics", "grad_norm", "weight_nonfinite"),
    Point(ParamProbe, "_step_pieces", "weight statistics", "weight_nonfinite", "label_count"),
    Point(TripwireCallbackImpl, "_train_loss", "loss statistics", "loss", "grad_norm"),
    Point(torch_collector, "_loss_sums", "loss statistics", "loss", "grad_norm"),
    Point(TorchCollector, "_user_pieces", "user statistics", "user/loss_copy", "loss"),
    Point(ParamProbe, "init_pieces", "initial-weight statistics", "init_weight_gain", "loss"),
    Point(torch_packing, "_flat", "statistics flush", "loss", "init_weight_gain", after=1),  # 0: the init flush
    Point(torch_packing.Packed, "read", "statistics flush", "loss", "init_weight_gain", after=1),
    Point(torch_batch, "_logits", "confusion matrix", "confusion", "val_loss"),
    Point(ConfusionProbe, "_count", "confusion matrix", "confusion", "val_loss"),
    Point(torch_collector, "_with_count", "validation loss", "val_loss", "confusion"),
    Point(ActivationProbe, "remove", "removing hooks", None, "act_dead_frac"),
]


def inject(monkeypatch, point: Point) -> None:
    original = getattr(point.owner, point.name)
    calls = [0]

    def failing(*args, **kwargs):
        if point.only is not None and point.only not in args:
            return original(*args, **kwargs)
        calls[0] += 1
        failures = calls[0] - point.after
        if failures > 0 and (point.times is None or failures <= point.times):
            raise Injected(f"planted in {point.name}")
        return original(*args, **kwargs)

    if isinstance(point.owner, type) and isinstance(point.owner.__dict__.get(point.name), staticmethod):
        failing = staticmethod(failing)
    monkeypatch.setattr(point.owner, point.name, failing)


def train(callback=None) -> tuple[dict, object, list]:
    """Seeded fit of a tiny MLP (with validation); its weights, the Trainer and the samples seen."""
    drain()  # user statistics left over from another test
    torch.manual_seed(0)
    task = Observing(mlp(features=4, hidden=16, classes=2))
    x, y = blobs(n=64, features=4, classes=2)
    samples: list = []
    if callback is not None:
        process = callback.monitor.process
        callback.monitor.process = lambda sample: (samples.append(sample), process(sample))[1]
    tr = trainer([] if callback is None else [callback], max_steps=MAX_STEPS)
    tr.fit(task, loader(x, y, batch_size=16, shuffle=False), loader(x, y, batch_size=32, shuffle=False))
    return {k: v.clone() for k, v in task.state_dict().items()}, tr, samples


@pytest.fixture(scope="module")
def untouched():
    """The weights of the same fit without tripwire."""
    return train()[0]


def seen(samples: list, what: str | tuple[str, str]) -> bool:
    key, subject = (what, None) if isinstance(what, str) else what
    for sample in samples:
        for name, series in sample.stats.items():
            if name.split("[")[0] == key and (subject is None or subject in series):
                return True
    return False


@pytest.mark.parametrize("point", POINTS, ids=str)
def test_a_failing_part_is_switched_off_alone_and_training_is_unchanged(point, monkeypatch, caplog, untouched):
    inject(monkeypatch, point)
    callback = tripwire(CONFIG)
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        weights, tr, samples = train(callback)
    assert tr.global_step == MAX_STEPS
    assert weights.keys() == untouched.keys()
    assert all(torch.equal(weights[k], untouched[k]) for k in weights)
    assert list(callback.monitor.guard.disabled) == [point.part]
    assert "Injected: planted in" in callback.monitor.guard.disabled[point.part]
    warned = [r.getMessage() for r in caplog.records if "failed and is off" in r.getMessage()]
    assert len(warned) == 1 and point.part in warned[0]
    if point.gone is not None:
        assert not seen(samples, point.gone)
    if point.kept is not None:
        assert seen(samples, point.kept)


@pytest.mark.parametrize("point", POINTS, ids=str)
def test_strict_lets_the_failure_reach_the_user(point, monkeypatch):
    inject(monkeypatch, point)
    with pytest.raises(Injected, match="planted in"):
        train(tripwire(CONFIG, strict=True))


def test_the_hooks_that_can_be_removed_are_removed_when_one_cannot(monkeypatch):
    inject(monkeypatch, Point(ActivationProbe, "remove", "removing hooks", None, None))
    torch.manual_seed(0)
    task = Task(mlp(features=4, hidden=16, classes=2))
    callback = tripwire({"rules": {"dead_relu": {}, "classifier_confusion": {}}})
    x, y = blobs(n=64, features=4, classes=2)
    trainer([callback], max_steps=2).fit(task, loader(x, y, batch_size=16), loader(x, y, batch_size=32))
    assert not task._forward_hooks  # the confusion hook went although the activation hooks could not
    assert list(callback.monitor.guard.disabled) == ["removing hooks"]


DDP_WORKER = Path(__file__).with_name("ddp_failopen_worker.py")
DDP_FAULTS = ("data", "pack", "read", "allocate", "confusion")  # see ddp_failopen_worker.FAULTS


@pytest.mark.timeout(300)
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_under_ddp_a_failure_on_one_rank_switches_the_collector_off_on_every_rank_at_the_same_step(tmp_path):
    port = str(random.randint(20000, 45000))
    scenarios = ",".join(("none", "healthy", "probe") + DDP_FAULTS)
    procs = [subprocess.Popen([sys.executable, str(DDP_WORKER), str(tmp_path), scenarios],
                              env=dict(os.environ, LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=port,
                                       OMP_NUM_THREADS="1"),
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in (0, 1)]
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:  # a hang: both ranks are stopped, the test fails below
            for other in procs:
                other.kill()
            outputs.append(proc.communicate()[0])
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    runs = {(r["scenario"], r["rank"]): r for rank in (0, 1)
            for r in map(json.loads, (tmp_path / f"rank{rank}.jsonl").read_text().splitlines())}
    untouched = runs["none", 0]["weights"]
    assert runs["none", 1]["weights"] == untouched
    for rank in (0, 1):  # with nothing failing, every part delivers (the confusion matrix included)
        healthy = runs["healthy", rank]
        assert healthy["weights"] == untouched and healthy["collector"] and healthy["disabled"] == {}
        assert {"act_dead_frac", "confusion", "grad_norm", "label_count", "loss", "val_loss"} <= set(healthy["series"])
    # an activation probe that fails on rank 1 only leaves its slot: that rank adds nothing, nothing is agreed
    first, second = runs["probe", 0], runs["probe", 1]
    assert first["weights"] == second["weights"] == untouched
    assert first["collector"] and second["collector"] and first["switched_off"] == second["switched_off"] == []
    assert first["disabled"] == {} and "act_dead_frac" in first["series"]
    assert sorted(second["disabled"]) == ["activation probe on module 'net.1'", "activation probe on module 'net.3'"]
    for scenario in DDP_FAULTS:
        first, second = runs[scenario, 0], runs[scenario, 1]
        assert first["global_step"] == second["global_step"] == runs["none", 0]["global_step"], scenario
        assert first["weights"] == second["weights"] == untouched, scenario  # training as without tripwire
        assert first["collector"] is second["collector"] is False, scenario
        assert len(first["switched_off"]) == 1 and first["switched_off"] == second["switched_off"], scenario
        assert list(first["disabled"]) == ["statistics collector"], scenario
        assert "failed on another rank" in first["disabled"]["statistics collector"], scenario
        assert "failed here" in second["disabled"]["statistics collector"], scenario
        assert any("planted in" in why for why in second["disabled"].values()), scenario
