"""A trainable parameter that gets no gradient (a head the forward pass skips) is not a learning
rate that is too low: ``small_updates`` and ``unchanged_tensor`` stay silent about it, and one
warning names it. A layer whose gradient is there but zero still fires (``test_lightning_faults``)."""

import logging

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch import nn

from lightning_kit import Task, blobs, fit, loader, mlp, tripwire

pytestmark = pytest.mark.torch

UPDATE_RULES = {"rules": {"small_updates": {}, "unchanged_tensor": {}}}


class SpareHead(nn.Module):
    """An MLP with a second, trainable head that ``forward`` never calls."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.spare = mlp(), nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def warnings_about_no_gradient(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "got no gradient" in r.getMessage()]


@pytest.mark.parametrize("config", [None, UPDATE_RULES], ids=["default rules", "update rules"])
def test_an_unused_head_gets_one_warning_and_no_learning_rate_advice(config, caplog):
    caplog.set_level(logging.WARNING, logger="tripwire")
    torch.manual_seed(0)
    cb = fit(Task(SpareHead()), loader(*blobs()), callback=tripwire(config, interval=5), max_steps=40)
    assert cb.findings == []
    (warning,) = warnings_about_no_gradient(caplog)
    assert warning.startswith("tripwire: 2 trainable parameters got no gradient at step 0 (net.spare.weight, "
                              "net.spare.bias)")
    assert "small_updates and unchanged_tensor" in warning


def test_a_model_whose_parameters_all_get_gradients_gets_no_warning(caplog):
    caplog.set_level(logging.WARNING, logger="tripwire")
    torch.manual_seed(0)
    cb = fit(Task(mlp()), loader(*blobs()), callback=tripwire(UPDATE_RULES, interval=5), max_steps=20)
    assert cb.findings == [] and warnings_about_no_gradient(caplog) == []
