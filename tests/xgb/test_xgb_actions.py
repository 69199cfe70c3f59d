"""What the callback does with a finding: stop, raise, checkpoint, record, and report on the booster."""

from __future__ import annotations

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import ConfigError, RuleTriggered, XGBoostTripwire
from tripwire.record import Run

pytestmark = pytest.mark.xgboost

DEPTH = {"rules": {"tree_depth": {"max_depth": 5}}}


def dmatrix(n: int = 1500, seed: int = 0) -> xgb.DMatrix:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    return xgb.DMatrix(X, X[:, 0] + rng.normal(size=n))


class Rounds(xgb.callback.TrainingCallback):
    """Counts the rounds it sees; optionally sets max_depth per round."""

    def __init__(self, depths: dict[int, int] | None = None) -> None:
        super().__init__()
        self.seen, self.depths = 0, depths or {}

    def before_iteration(self, model, epoch, evals_log):
        if self.depths:
            model.set_param({"max_depth": self.depths.get(epoch, 3)})
        return False

    def after_iteration(self, model, epoch, evals_log):
        self.seen += 1
        return False


def test_stop_returns_true_at_the_sampled_round_after_recording(tmp_path):
    later = Rounds()
    cb = XGBoostTripwire(DEPTH, stop_on=["tree_depth"], interval=5, log_dir=tmp_path)
    bst = xgb.train({}, dmatrix(), 50, callbacks=[Rounds({7: 9}), cb, later])

    assert cb.stopped_by is not None and cb.stopped_by.step == 10 and cb.stopped_by.value == 9  # rounds 0, 5, 10
    assert bst.num_boosted_rounds() == 11
    assert later.seen == 10  # XGBoost skipped the callbacks after ours in the stopping round
    assert XGBoostTripwire.findings_of(bst) == cb.findings
    assert XGBoostTripwire.stopped_by_of(bst) == cb.stopped_by
    with Run(cb.record_path) as run:
        assert [f.kind for f in run.findings] == ["tree_depth"]


def test_raise_action_raises_rule_triggered_and_keeps_the_record(tmp_path):
    cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 5, "actions": ["raise"]}}}, log_dir=tmp_path,
                         run_name="raised")
    with pytest.raises(RuleTriggered) as err:
        xgb.train({}, dmatrix(), 30, callbacks=[Rounds({12: 8}), cb])
    assert err.value.finding.kind == "tree_depth" and err.value.finding.step == 20
    assert cb.findings == [err.value.finding]
    assert cb.record_path is not None
    with Run(tmp_path / "raised") as run:  # closed and flushed before raising
        assert [f.step for f in run.findings] == [20]
        assert run.end.describe() == "stopped by rule tree_depth at step 20 (it raised RuleTriggered)"


def test_checkpoint_action_saves_the_booster_in_the_run_directory(tmp_path):
    cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 5, "actions": ["checkpoint"]}}}, log_dir=tmp_path,
                         run_name="ckpt")
    bst = xgb.train({}, dmatrix(), 30, callbacks=[Rounds({3: 8}), cb])
    [saved] = (tmp_path / "ckpt").glob("*.ubj")
    assert saved.name == "tripwire-tree_depth-step10.ubj"
    assert xgb.Booster(model_file=str(saved)).num_boosted_rounds() == 11
    assert bst.num_boosted_rounds() == 30  # checkpoint alone does not stop


def test_findings_travel_with_the_saved_model(tmp_path):
    cb = XGBoostTripwire(DEPTH, log_dir=False)
    bst = xgb.train({}, dmatrix(), 20, callbacks=[Rounds({2: 8}), cb])
    path = str(tmp_path / "model.json")
    bst.save_model(path)
    loaded = xgb.Booster(model_file=path)
    assert XGBoostTripwire.findings_of(loaded) == cb.findings != []
    assert XGBoostTripwire.stopped_by_of(loaded) is None


def test_rounds_after_the_last_sample_are_checked_when_training_ends():
    cb = XGBoostTripwire(DEPTH, log_dir=False)
    xgb.train({}, dmatrix(), 25, callbacks=[Rounds({22: 9}), cb])
    [finding] = cb.findings
    assert finding.step == 24 and finding.value == 9


def test_findings_survive_early_stopping_that_keeps_the_best_model():
    d, dval = dmatrix(), dmatrix(seed=1)
    cb = XGBoostTripwire(DEPTH, log_dir=False)
    stopper = xgb.callback.EarlyStopping(rounds=3, save_best=True)
    bst = xgb.train({"eta": 1.0}, d, 200, evals=[(dval, "validation")], callbacks=[Rounds({0: 9}), cb, stopper],
                    verbose_eval=False)
    assert bst.num_boosted_rounds() < 200
    assert XGBoostTripwire.findings_of(bst) == cb.findings != []


def test_each_training_starts_fresh():
    cb = XGBoostTripwire(DEPTH, log_dir=False)
    xgb.train({}, dmatrix(), 10, callbacks=[Rounds({1: 9}), cb])
    assert len(cb.findings) == 1
    xgb.train({"max_depth": 3}, dmatrix(), 10, callbacks=[cb])
    assert cb.findings == []


def test_misnamed_settings_fail_before_or_at_the_first_round():
    with pytest.raises(ConfigError, match="stop_on names rules that are not enabled: tree_dept"):
        XGBoostTripwire(DEPTH, stop_on=["tree_dept"])
    cb = XGBoostTripwire({"rules": {"overfit": {}}}, val_set="valid", log_dir=False)
    d = dmatrix()
    with pytest.raises(ConfigError, match=r"val_set='valid' is not an eval set.*'train', 'eval'"):
        xgb.train({}, d, 10, evals=[(d, "train"), (d, "eval")], callbacks=[cb], verbose_eval=False)
    assert cb._session is None  # the monitor was closed on the way out


NOTIFIED = []


def notify(finding):
    """A user action, referenced from the config as test_xgb_actions:notify."""
    NOTIFIED.append((finding.rule, finding.step))


def test_user_action_is_called_at_the_first_finding_and_a_misspelled_one_fails_at_construction():
    NOTIFIED.clear()
    cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 5, "actions": ["test_xgb_actions:notify"]}}},
                         interval=5, log_dir=False)
    xgb.train({}, dmatrix(), 10, callbacks=[Rounds({2: 8}), cb])
    assert NOTIFIED == [("tree_depth", 5)] and [f.step for f in cb.findings] == [5]
    with pytest.raises(ConfigError) as err:
        XGBoostTripwire({"rules": {"tree_depth": {"actions": ["test_xgb_actions:notfy"]}}})
    assert err.value.path == "rules.tree_depth.actions.0"
    assert "module 'test_xgb_actions' has no attribute 'notfy' (did you mean 'notify'?)" in err.value.problem


def test_cross_validation_reads_mean_losses(data):
    X, y = data(n=300, features=20, informative=5, noise=1.5)
    cb = XGBoostTripwire({"rules": {"overfit": {}, "tree_depth": {}}}, interval=5, log_dir=False)
    xgb.cv({"max_depth": 12, "min_child_weight": 0, "reg_lambda": 0, "eval_metric": "logloss"},
           xgb.DMatrix(X, y), 60, nfold=2, callbacks=[cb])
    [finding] = cb.findings
    assert finding.kind == "overfit" and finding.evidence["train_loss"] < finding.evidence["val_loss"]
