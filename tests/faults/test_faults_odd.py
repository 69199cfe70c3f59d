"""Item 6: odd but legal training setups run to the end under the default rule set, with findings
that make sense: the real fault (NaN/Inf inputs) is found, a healthy odd setup stays silent.

Every case writes a run record (NaN and Inf values included) and runs the default config.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from figures import check, tally
from lightning_kit import Task, blobs, fit, loader, mlp, tripwire

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def data():
    return blobs(n=1024, spread=2.0), blobs(n=256, seed=1, spread=2.0)


@pytest.fixture
def run(tmp_path, request):
    """``run(task, train, val, **trainer_options)`` -> the callback; counts the case as run or crashed."""
    def go(task, train, val=None, *, max_steps=100, interval=None, **options):
        cb = tripwire(None, interval=interval, log_dir=tmp_path / "runs")
        try:
            fit(task, train, val, callback=cb, max_steps=max_steps, **options)
        except Exception:
            check("odd.crashes", tally("odd.crashes", 1))
            raise
        tally("odd.cases", 1)
        tally("odd.crashes", 0)
        assert cb.monitor.record_path is not None
        return cb

    return go


def rules(cb) -> list[tuple[str, int]]:
    return [(f.rule, f.step) for f in cb.findings]


def test_nan_and_inf_inputs_stop_on_the_step_they_arrive(run, data):
    (x, y), _ = data
    x = x.clone()
    x[10 * 16 + 3] = float("nan")  # batch 10
    x[20 * 16 + 5, 2] = float("inf")  # batch 20
    cb = run(Task(mlp()), loader(x, y, batch_size=16, shuffle=False), interval=5)
    assert cb.stopped_by.rule == "nonfinite" and cb.stopped_by.step == 10 and "loss" in cb.stopped_by.subject
    assert rules(cb) == [("nonfinite", 10)]


def test_inf_inputs_alone(run, data):
    (x, y), _ = data
    x = x.clone()
    x[7 * 16, 0] = float("inf")
    cb = run(Task(mlp()), loader(x, y, batch_size=16, shuffle=False), interval=5)
    assert rules(cb) == [("nonfinite", 10)]  # the sample after batch 7 sees the NaN loss it caused


def test_batch_size_one_is_silent(run, data):
    """A single sample cannot show a dead or saturated unit: those statistics abstain."""
    (x, y), (xv, yv) = data
    cb = run(Task(mlp(), lr=0.01), loader(x[:300], y[:300], batch_size=1), loader(xv, yv, shuffle=False),
             max_steps=300)
    assert rules(cb) == []


@pytest.mark.parametrize("how", ["empty_loader", "limit_val_batches_0"])
def test_no_validation_batches(run, data, how):
    (x, y), (xv, yv) = data
    if how == "empty_loader":
        val, options = DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))), {}
    else:
        val, options = loader(xv, yv, shuffle=False), {"limit_val_batches": 0}
    cb = run(Task(mlp()), loader(x, y), val, val_check_interval=20, **options)
    assert rules(cb) == []


class IntegerInputs(Task):
    """Integer features 0..99, scaled inside the model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float() / 50 - 1)


def test_integer_inputs(run):
    x = torch.randint(0, 100, (1024, 8), generator=torch.Generator().manual_seed(0))
    y = (x[:, 0] > 50).long() + (x[:, 1] > 50).long()
    cb = run(IntegerInputs(mlp()), loader(x, y), loader(x[:256], y[:256], shuffle=False))
    assert rules(cb) == []


def test_model_without_monitored_activations(run, data):
    (x, y), (xv, yv) = data
    cb = run(Task(nn.Linear(8, 3)), loader(x, y), loader(xv, yv, shuffle=False))
    assert rules(cb) == []


def test_fully_frozen_backbone(run, data):
    """Frozen parameters are not 'unchanged' or 'small updates': only the head trains, silently."""
    (x, y), (xv, yv) = data
    net = mlp()
    for p in list(net.parameters())[:-2]:
        p.requires_grad_(False)
    cb = run(Task(net), loader(x, y), loader(xv, yv, shuffle=False))
    assert rules(cb) == []


class NothingToTrain(Task):
    """Every parameter frozen and no optimizer (Lightning runs the loop without stepping)."""

    def training_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return None


def test_zero_trainable_parameters(run, data):
    (x, y), _ = data
    net = mlp().requires_grad_(False)
    cb = run(NothingToTrain(net), loader(x, y), max_steps=-1, max_epochs=2)
    assert rules(cb) == []


def test_bf16_parameters(run, data):
    """Pure bf16 weights (precision='bf16-true'): healthy is silent, a NaN is still caught."""
    (x, y), (xv, yv) = data
    cb = run(Task(mlp()), loader(x, y), loader(xv, yv, shuffle=False), precision="bf16-true")
    assert rules(cb) == [] and next(cb.collector.params.module.parameters()).dtype == torch.bfloat16
    x = x.clone()
    x[5 * 32:] = float("nan")
    cb = run(Task(mlp()), loader(x, y, shuffle=False), precision="bf16-true")
    assert rules(cb) == [("nonfinite", 10)]
