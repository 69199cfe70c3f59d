"""Findings reach the Trainer's loggers: a ``tripwire/findings`` count in every logger, and each
finding as text where the logger holds text (TensorBoard here, when it is installed)."""

import csv
import importlib.util

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from lightning.pytorch.loggers import CSVLogger
from torch import nn

from lightning_kit import Task, blobs, fit, loader, mlp, tripwire

DEAD = {"rules": {"dead_relu": {"patience": 2}, "vanishing_gradient": {}}}


def dead_task() -> Task:
    torch.manual_seed(0)
    net = mlp()
    nn.init.constant_(net[0].bias, -50.0)  # every unit of the first ReLU is dead from the start
    return Task(net)


def test_the_findings_count_reaches_a_csv_logger(tmp_path):
    cb = tripwire(DEAD, interval=5)
    fit(dead_task(), loader(*blobs()), callback=cb, max_steps=30, logger=CSVLogger(tmp_path, name="run"))
    assert cb.findings
    with next(tmp_path.rglob("metrics.csv")).open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("tripwire/findings")]
    counts = [(int(r["step"]), float(r["tripwire/findings"])) for r in rows]
    assert counts[-1][1] == len(cb.findings)
    logged = dict(counts)
    for f in cb.findings:  # at the finding's own step, the count includes it
        assert logged[f.step] == sum(g.step <= f.step for g in cb.findings)


@pytest.mark.skipif(not any(importlib.util.find_spec(p) for p in ("tensorboard", "tensorboardX")),
                    reason="TensorBoard is not installed")
def test_each_finding_is_text_in_tensorboard(tmp_path):
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cb = tripwire(DEAD, interval=5)
    fit(dead_task(), loader(*blobs()), callback=cb, max_steps=30, logger=TensorBoardLogger(tmp_path, name="run"))
    (events,) = {p.parent for p in tmp_path.rglob("events.out.tfevents.*")}
    acc = EventAccumulator(str(events), size_guidance={"tensors": 0}).Reload()
    for f in cb.findings:
        texts = acc.Tensors(f"tripwire/{f.rule}/text_summary")
        assert any(t.step == f.step and f.rule.encode() in t.tensor_proto.string_val[0] for t in texts)
