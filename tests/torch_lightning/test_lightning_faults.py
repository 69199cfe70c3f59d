"""Every network rule fires on a planted fault in a real Lightning run (default config, CPU).

Each run is a few dozen optimizer steps of a tiny model. ``interval`` is lowered where a rule
needs several samples (patience) or a number of labels/values before it judges.
"""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch import nn

from lightning_kit import (
    PACKAGES,
    Task,
    TinyTransformer,
    blobs,
    fit,
    loader,
    mlp,
    rules_fired,
    task_class,
    tokens,
    tripwire,
)

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def data():
    return blobs(n=512, spread=2.0)


def scaled(net: nn.Sequential, factor: float) -> nn.Sequential:
    with torch.no_grad():
        for layer in net[:-1]:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(factor)
    return net


def test_deep_sigmoid_mlp_has_vanishing_gradients(data):
    cb = fit(Task(mlp(depth=12, act=nn.Sigmoid)), loader(*data), callback=tripwire(interval=5), max_steps=15)
    found = [f for f in cb.findings if f.rule == "vanishing_gradient"]
    assert found and "net.0.weight" in found[0].subject  # the first layer, furthest from the loss
    assert found[0].step == 5  # patience 2: samples at steps 0 and 5


def test_huge_learning_rate_explodes_gradients(data):
    cb = fit(Task(mlp(), lr=10.0), loader(*data), callback=tripwire(interval=1), max_steps=12)
    assert "exploding_gradient" in rules_fired(cb)


def test_huge_learning_rate_reaches_nan_and_stops(data):
    cb = fit(Task(mlp(), lr=50.0), loader(*data), callback=tripwire(), max_steps=200)
    assert cb.stopped_by is not None and cb.stopped_by.rule == "nonfinite"
    assert cb.stopped_by.step < 200


@pytest.mark.parametrize("package", PACKAGES)
def test_nan_inputs_stop_training(data, package):
    x, y = data[0].clone(), data[1]
    x[100:110] = float("nan")  # batch 3
    cb = fit(task_class(package)(mlp()), loader(x, y, shuffle=False), callback=tripwire(interval=5), max_steps=100)
    assert cb.stopped_by is not None and cb.stopped_by.rule == "nonfinite" and cb.stopped_by.step == 5
    assert "loss" in cb.stopped_by.subject


def test_negative_bias_relu_is_dead(data):
    cb = fit(Task(mlp(dead=0)), loader(*data), callback=tripwire(interval=5), max_steps=10)
    dead = [f for f in cb.findings if f.rule == "dead_relu"]
    assert dead and "net.1" in dead[0].subject and dead[0].value == 1.0


def test_large_init_tanh_saturates_and_is_poor_initialization(data):
    cb = fit(Task(scaled(mlp(act=nn.Tanh), 100.0)), loader(*data), callback=tripwire(interval=5), max_steps=10)
    assert {"tanh_saturation", "poor_initialization"} <= rules_fired(cb)
    init = next(f for f in cb.findings if f.rule == "poor_initialization")
    assert init.step == 0 and init.value > init.threshold


def test_large_init_sigmoid_saturates(data):
    cb = fit(Task(scaled(mlp(act=nn.Sigmoid), 100.0)), loader(*data), callback=tripwire(interval=5), max_steps=10)
    assert "sigmoid_saturation" in rules_fired(cb)


def test_constant_init_is_poor_initialization(data):
    net = mlp()
    nn.init.constant_(net[0].weight, 0.1)
    cb = fit(Task(net), loader(*data), callback=tripwire(), max_steps=2)
    found = [f for f in cb.findings if f.rule == "poor_initialization"]
    assert found and found[0].subject == "net.0.weight" and found[0].step == 0


def test_tiny_learning_rate_gives_small_updates(data):
    cb = fit(Task(mlp(), lr=1e-9), loader(*data), callback=tripwire(interval=5), max_steps=15)
    found = [f for f in cb.findings if f.rule == "small_updates"]
    assert found and found[0].value < 1e-6


class CutOff(nn.Module):
    """A trainable layer whose output reaches the loss multiplied by 0: its gradient is all zeros,
    so it never moves. (A layer with no gradient at all is not used in the loss: it gets a
    warning, not a finding; see ``test_lightning_no_gradient``.)"""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.aux = mlp(), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + 0.0 * self.aux(x)


def test_layer_with_a_zero_gradient_is_unchanged(data):
    cb = fit(Task(CutOff()), loader(*data), callback=tripwire(interval=5), max_steps=20)
    found = [f for f in cb.findings if f.rule == "unchanged_tensor"]
    assert [f.subject for f in found] == ["net.aux.weight"]


def test_few_samples_overfit():
    xs, ys = blobs(n=16, spread=2.0)
    xv, yv = blobs(n=256, seed=1, spread=2.0)
    cb = fit(Task(mlp(hidden=64), lr=0.1), loader(xs, ys, batch_size=8), loader(xv, yv, shuffle=False),
             max_steps=60, check_val_every_n_epoch=4)
    assert "overfit" in rules_fired(cb)


def test_imbalanced_labels(data):
    y = torch.where(torch.rand(512) < 0.95, 0, 1)
    cb = fit(Task(mlp()), loader(data[0], y), callback=tripwire(interval=2), max_steps=40)
    found = [f for f in cb.findings if f.rule == "class_imbalance"]
    assert found and found[0].value > 10


def test_unscaled_features_are_not_normalized(data):
    x = data[0] * torch.tensor([1, 1, 1, 1, 1, 1, 100.0, 1]) + 20
    cb = fit(Task(mlp(), lr=1e-3, optimizer="adam"), loader(x, data[1]), callback=tripwire(interval=2),
             max_steps=40)
    found = [f for f in cb.findings if f.rule == "not_normalized"]
    assert found and found[0].evidence["features"][0]["feature"] == "6"


def test_padded_token_sequences(data):
    ids, y = tokens(n=512, pad_share=0.75)
    cb = fit(Task(TinyTransformer(), lr=0.003, optimizer="adam"), loader(ids, y), callback=tripwire(interval=5),
             max_steps=20)
    found = [f for f in cb.findings if f.rule == "token_ratio"]
    assert found and found[0].value == pytest.approx(0.75)


def test_two_swapped_classes_in_validation():
    x, y = blobs(n=512, spread=1.0)  # 16 batches per epoch; patience 2 is two epochs of validations
    xv, yv = blobs(n=384, seed=1, spread=1.0)
    swapped = yv.clone()
    swapped[yv == 1], swapped[yv == 2] = 2, 1
    cb = fit(Task(mlp()), loader(x, y), loader(xv, swapped, shuffle=False), max_steps=32)
    found = [f for f in cb.findings if f.rule == "classifier_confusion"]
    assert found and "1" in found[0].subject and "2" in found[0].subject
