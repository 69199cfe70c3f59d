"""Shadow mode feeds `tripwire calibrate` from a real Lightning run."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from lightning_kit import Task, blobs, fit, loader, mlp, tripwire
from tripwire.calibrate import calibrate

pytestmark = pytest.mark.torch


def test_a_healthy_shadow_run_gives_every_torch_rule_a_margin(tmp_path):
    torch.manual_seed(0)
    x, y = blobs()
    xv, yv = blobs(n=128, seed=1)
    cb = tripwire({"shadow": True, "interval": 5}, log_dir=tmp_path, run_name="healthy")
    fit(Task(mlp()), loader(x, y), loader(xv, yv, shuffle=False), callback=cb, max_steps=120)
    rows = {(r.rule, r.limit): r for r in calibrate([tmp_path / "healthy"])}
    # every rule with statistics in a torch run was replayed on it
    for key in [("vanishing_gradient", "threshold"), ("vanishing_gradient", "ratio"),
                ("exploding_gradient", "factor"), ("small_updates", "threshold"), ("dead_relu", "threshold_layer"),
                ("poor_initialization", "max_gain"), ("not_normalized", "threshold_mean"),
                ("class_imbalance", "threshold"), ("overfit", "ratio"), ("overtraining", "patience")]:
        assert rows[key].runs == 1, (key, rows[key].note)
    # a healthy run: the default thresholds of these gradient rules leave room, measured in factors
    assert rows["vanishing_gradient", "threshold"].margin > 10
    assert rows["small_updates", "threshold"].margin > 10
    assert rows["exploding_gradient", "max_norm"].margin > 100
    assert not rows["exploding_gradient", "factor"].fired  # jumps while the loss falls are learning
    assert not rows["vanishing_gradient", "threshold"].fired
    # XGBoost's rules have nothing to replay in a torch run
    assert rows["tree_depth", "max_depth"].runs == 0
