"""The XGBoost demo: unbounded trees on a small, noisy, imbalanced training set.

40 features of which 5 carry signal, one class about 20x rarer than the other, 2% label noise,
1500 training rows and trees up to depth 16. tripwire reports the imbalance, the deep trees and
the validation loss pulling away from the training loss, and stops on ``overfit`` long before
the 500 rounds.
"""

from __future__ import annotations

from pathlib import Path

import xgboost as xgb

from tripwire.callbacks.xgboost import XGBoostTripwire


def run(out_dir: Path) -> dict:
    """Train (a few seconds) and return what tripwire found."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=4000, n_features=40, n_informative=5, weights=[0.96], flip_y=0.02,
                               random_state=0)
    dtrain, dval = xgb.DMatrix(x[:1500], y[:1500]), xgb.DMatrix(x[1500:], y[1500:])
    callback = XGBoostTripwire({"interval": 5, "log_dir": str(out_dir)}, stop_on=["overfit"], labels=y[:1500])
    callback.monitor.print_summary = False  # run_demo prints it with the report
    print("tripwire demo: boosting depth-16 trees on 1500 noisy, imbalanced rows; overfit is set to stop training.")
    booster = xgb.train({"max_depth": 16, "min_child_weight": 0, "reg_lambda": 0, "eta": 0.3,
                         "objective": "binary:logistic", "eval_metric": "logloss"},
                        dtrain, num_boost_round=500, evals=[(dtrain, "train"), (dval, "validation")],
                        callbacks=[callback], verbose_eval=False)
    record = callback.record_path and str(Path(callback.record_path).parent)
    return {"findings": callback.findings, "stopped_by": callback.stopped_by, "monitor": callback.monitor,
            "record": record,
            "steps": booster.num_boosted_rounds()}
