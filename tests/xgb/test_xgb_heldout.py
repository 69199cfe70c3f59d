"""Held-out importance (``XGBoostTripwire(eval_data=...)``): real trainings, and its parts against
references (XGBoost's own metrics, a hand-made correlation structure)."""

from __future__ import annotations

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import ConfigError, XGBoostTripwire
from tripwire.callbacks.xgboost.heldout import FIRST_ROUND, HeldOut, correlated_groups, row_losses

pytestmark = pytest.mark.xgboost

DIABETES = {"objective": "reg:squarederror", "eta": 0.03, "max_depth": 3, "subsample": 0.8, "min_child_weight": 5,
            "eval_metric": "rmse", "nthread": 1, "seed": 0}


def _split(x, y, seed=0):
    from sklearn.model_selection import train_test_split

    return train_test_split(x, y, test_size=0.25, random_state=seed)


def _diabetes(noise_columns=0):
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    if noise_columns:
        x = np.column_stack([x, np.random.default_rng(0).normal(size=(len(y), noise_columns))])
    return _split(x, y)


def _fit(params, xt, xv, yt, yv, rounds, held=True, early=None):
    cb = XGBoostTripwire(None, log_dir=False, eval_data=(xv, yv) if held else None)
    dtrain, dval = xgb.DMatrix(xt, yt), xgb.DMatrix(xv, yv)
    xgb.train(params, dtrain, rounds, evals=[(dtrain, "train"), (dval, "validation")], verbose_eval=False,
              callbacks=[cb], early_stopping_rounds=early)
    return cb


def useless(cb):
    return [f for f in cb.findings if f.rule == "low_feature_importance" and f.subject == "useless"]


def test_noise_columns_are_found_on_held_out_rows_and_missed_by_gain_alone():
    xt, xv, yt, yv = _diabetes(noise_columns=40)
    assert not useless(_fit(DIABETES, xt, xv, yt, yv, 120, held=False))  # gain: noise looks like a weak feature
    (finding,) = useless(_fit(DIABETES, xt, xv, yt, yv, 120))
    assert finding.value > 0.6 and "no effect on the held-out loss" in finding.message  # 0.72: 36 of 50


@pytest.mark.parametrize("name", ["diabetes", "breast_cancer"])
def test_healthy_runs_with_weak_or_correlated_features_stay_silent(name):
    from sklearn.datasets import load_breast_cancer

    if name == "diabetes":
        cb = _fit(DIABETES, *_diabetes(), 120)
    else:  # 30 correlated features, colsample: alone, 28 of 30 would show no held-out effect
        x, y = load_breast_cancer(return_X_y=True)
        params = {"objective": "binary:logistic", "eta": 0.05, "max_depth": 4, "subsample": 0.8,
                  "colsample_bytree": 0.8, "eval_metric": "logloss", "nthread": 1, "seed": 0}
        cb = _fit(params, *_split(x, y), 600, early=40)
    assert cb.findings == []


def test_the_sklearn_api_takes_the_held_out_rows_through_its_copies():
    xt, xv, yt, yv = _diabetes(noise_columns=40)
    cb = XGBoostTripwire(None, log_dir=False, eval_data=(xv, yv))
    model = xgb.XGBRegressor(n_estimators=120, learning_rate=0.03, max_depth=3, subsample=0.8, min_child_weight=5,
                             n_jobs=1, random_state=0, callbacks=[cb])
    model.fit(xt, yt, eval_set=[(xt, yt), (xv, yv)], verbose=False)
    assert [f.subject for f in XGBoostTripwire.findings_of(model) if f.rule == "low_feature_importance"] == ["useless"]


def test_held_out_rows_that_do_not_fit_the_model_are_a_config_error():
    xt, xv, yt, yv = _diabetes()
    with pytest.raises(ConfigError, match="eval_data has 9 columns, the model's training data 10"):
        _fit(DIABETES, xt, xv[:, :9], yt, yv, 5)
    with pytest.raises(ConfigError, match="one target per row"):
        XGBoostTripwire(None, log_dir=False, eval_data=(xv, yv[:-1]))
    with pytest.raises(ConfigError, match=r"eval_data must be \(X, y\)"):
        XGBoostTripwire(None, log_dir=False, eval_data=xv)


def test_an_objective_without_a_per_row_loss_sends_no_held_out_importance(caplog):
    xt, xv, yt, yv = _diabetes()
    with caplog.at_level("INFO", logger="tripwire"):
        cb = _fit({**DIABETES, "objective": "count:poisson", "eval_metric": "poisson-nloglik"}, xt, xv, yt, yv, 30)
    assert "no held-out importance for objective 'count:poisson'" in caplog.text and cb.switched_off == {}


def test_measured_when_the_model_has_doubled_and_at_the_end():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    bst = xgb.train({"max_depth": 1, "nthread": 1}, xgb.DMatrix(x, x[:, 0]), 100)
    held = HeldOut((x, x[:, 0]))
    held.bind(bst)
    measured = []
    for rounds in range(1, 101):
        if held.due(rounds, final=rounds == 100):
            held.zscores(bst[:rounds], ["f0", "f1", "f2"])
            measured.append(rounds)
    assert measured == [FIRST_ROUND, 20, 40, 80, 100]
    held.restart()
    assert held.due(FIRST_ROUND) and not held.due(FIRST_ROUND - 1)


@pytest.mark.parametrize("objective,metric", [("reg:squarederror", "rmse"), ("binary:logistic", "logloss"),
                                              ("multi:softprob", "mlogloss")])
def test_the_per_row_loss_averages_to_xgboosts_own_metric(objective, metric):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = {"reg:squarederror": x[:, 0] + rng.normal(size=300), "binary:logistic": (x[:, 0] > 0).astype(float),
         "multi:softprob": np.digitize(x[:, 0], [-0.5, 0.5]).astype(float)}[objective]
    params = {"objective": objective, "eval_metric": metric, "nthread": 1, "max_depth": 2}
    if objective == "multi:softprob":
        params["num_class"] = 3
    dm = xgb.DMatrix(x, y)
    bst = xgb.train(params, dm, 10)
    losses = row_losses(bst.predict(dm, output_margin=True), y, objective)
    reference = float(bst.eval(dm).split(":")[-1])
    assert (np.sqrt(losses.mean()) if metric == "rmse" else losses.mean()) == pytest.approx(reference, rel=1e-4)


def test_correlated_columns_are_shuffled_together_and_noise_alone():
    rng = np.random.default_rng(0)
    a, b, noise = rng.normal(size=(3, 500))
    x = np.column_stack([a, noise, a + 0.3 * rng.normal(size=500), b, np.ones(500), -b])
    assert correlated_groups(x) == [[0, 2], [1], [3, 5], [4]]


@pytest.mark.parametrize("rounds", [120, 121])
def test_the_final_model_is_measured_whether_or_not_its_last_round_was_sampled(rounds, tmp_path):
    # eta 0.03: the held-out test opens at round 100; the doubling schedule measured at 80, so the
    # finding needs the final model, whose last round is sampled (121 rounds, interval 10) or not (120)
    from tripwire.record import Run

    xt, xv, yt, yv = _diabetes(noise_columns=40)
    cb = XGBoostTripwire(None, log_dir=str(tmp_path), eval_data=(xv, yv))
    dtrain = xgb.DMatrix(xt, yt)
    xgb.train(DIABETES, dtrain, rounds, evals=[(dtrain, "train")], verbose_eval=False, callbacks=[cb])
    assert [f.step for f in useless(cb)] == [rounds - 1]
    run = Run(cb.record_path)
    assert run.series("heldout_importance", "f0")[0][-1] == rounds - 1
