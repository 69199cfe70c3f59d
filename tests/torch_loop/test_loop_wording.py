"""A torch run's findings speak of steps and give torch advice, never boosting rounds or tree
parameters (the XGBoost side: tests/xgb/test_xgb_wording.py)."""

import re

import pytest

torch = pytest.importorskip("torch")

from torch import nn

from tripwire.torch import Tripwire


def test_an_imbalanced_torch_run_hears_of_steps_and_torch_remedies(capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    config = {"interval": 2, "log_dir": None, "rules": {"class_imbalance": {}, "loss_not_decreasing":
              {"window": 4, "warmup": 0, "patience": 2, "min_delta": 0.5}}}
    with Tripwire(model, optimizer, config) as tw:
        for _ in range(40):
            x, y = torch.randn(32, 4), (torch.rand(32) < 0.03).long()  # 1 in 33 labels is class 1
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            tw.step(loss, inputs=x, labels=y)
    assert {f.rule for f in tw.findings} == {"class_imbalance", "loss_not_decreasing"}
    for f in tw.findings:
        assert not re.search(r"\brounds?\b|max_depth|scale_pos_weight|eta\b|class_weight", f.message + f.suggestion)
    imbalance = next(f for f in tw.findings if f.rule == "class_imbalance")
    assert "WeightedRandomSampler" in imbalance.suggestion
    assert re.search(r"\bsteps?\b", next(f for f in tw.findings if f.rule == "loss_not_decreasing").message)
    assert "first step" in capsys.readouterr().out
