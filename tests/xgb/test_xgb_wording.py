"""XGBoost findings speak of rounds and give tree advice (max_depth, min_child_weight, eta, early
stopping rounds), never of steps, dropout or weight decay: in the message, the suggestion, the
alert line and the end-of-run summary."""

import logging
import re

import numpy as np
import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import XGBoostTripwire

NETWORK_WORDS = re.compile(r"\bsteps?\b|dropout|weight decay|learning rate|BatchNorm|optimizer", re.IGNORECASE)
TREE_WORDS = re.compile(r"max_depth|min_child_weight|eta|early_stopping_rounds|scale_pos_weight|subsample")


def _train(params, rounds, labels, rules, data, **data_kwargs):
    x, y = data(**data_kwargs)
    y = labels(y)
    half = len(y) // 2
    dtrain, dval = xgb.DMatrix(x[:half], y[:half]), xgb.DMatrix(x[half:], y[half:])
    tw = XGBoostTripwire({"interval": 5, "log_dir": None, "rules": rules}, labels=y[:half])
    xgb.train({"objective": "binary:logistic", "eval_metric": "logloss", **params}, dtrain, num_boost_round=rounds,
              evals=[(dtrain, "train"), (dval, "validation")], callbacks=[tw], verbose_eval=False)
    return tw


def _assert_tree_words(tw, expected):
    assert {f.rule for f in tw.findings} == expected
    for f in tw.findings:
        assert not NETWORK_WORDS.search(f.message), f.message
        assert not NETWORK_WORDS.search(f.suggestion), f.suggestion
        assert TREE_WORDS.search(f.suggestion), f.suggestion


def test_an_overfitting_booster_hears_of_rounds_and_tree_parameters(data, capsys, caplog):
    rng = np.random.default_rng(0)
    rare = lambda y: np.where(rng.random(len(y)) < 0.06, 1, 0)  # labels that are noise, 1 in 17
    with caplog.at_level(logging.WARNING, logger="tripwire"):
        tw = _train({"max_depth": 16, "min_child_weight": 0, "reg_lambda": 0, "eta": 0.3}, 200, rare,
                    {"overfit": {}, "overtraining": {}, "class_imbalance": {}, "tree_depth": {}}, data,
                    n=3000, features=20)
    _assert_tree_words(tw, {"overfit", "overtraining", "class_imbalance", "tree_depth"})
    assert "round" in next(f for f in tw.findings if f.rule == "overfit").message
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tripwire warning:")]
    assert len(lines) == len(tw.findings) and all(" at round " in line for line in lines), lines
    summary = capsys.readouterr().out
    assert "first round" in summary and not re.search(r"\bsteps?\b", summary), summary


def test_a_booster_that_does_not_learn_hears_of_eta_and_depth(data):
    rng = np.random.default_rng(1)
    noise = lambda y: rng.integers(0, 2, len(y))  # labels that carry nothing to learn
    window = {"window": 20, "warmup": 0, "patience": 2}
    tw = _train({"max_depth": 1, "eta": 1e-4}, 120, noise,
                {"loss_not_decreasing": window,
                 "underfit": {"window": 20, "patience": 2, "min_steps": 60, "early_steps": 60}}, data)
    _assert_tree_words(tw, {"loss_not_decreasing", "underfit"})
    assert all(re.search(r"\brounds?\b", f.message) for f in tw.findings)


def test_the_report_and_the_record_say_where_a_boosting_run_stopped_in_rounds(data, tmp_path, capsys):
    from tripwire.cli import main

    x, y = data(n=600, features=6)
    tw = XGBoostTripwire({"interval": 5, "log_dir": str(tmp_path), "rules": {"tree_depth": {"max_depth": 2}}},
                         stop_on=["tree_depth"])
    xgb.train({"objective": "binary:logistic", "max_depth": 6}, xgb.DMatrix(x, y), 30, callbacks=[tw])
    assert tw.stopped_by is not None and tw.stopped_by.step == 0
    assert "training stopped at round 0 by tree_depth" in capsys.readouterr().out
    assert main(["report", str(tw.monitor.record_path)]) == 0
    printed = capsys.readouterr().out
    assert "stopped by rule tree_depth at round 0" in printed and not re.search(r"\bsteps?\b", printed), printed
