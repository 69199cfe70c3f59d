"""XGBoost quickstart: add XGBoostTripwire to xgboost.train and to an XGBClassifier.

The first run is broken on purpose: unbounded trees on 300 training rows of a noisy problem with
40 features, only 5 of them informative. tripwire reports the deep trees, the features the model
does not use and the validation loss pulling away from the training loss, and stops training on
``overfit`` instead of running all 500 rounds. The second run, with the sklearn API, is a
sensible model (shallow trees, early stopping, 4000 rows of a problem whose features carry
signal); it stays silent.

Run:
    pip install -e ".[xgboost]"
    python examples/xgboost_quickstart.py
"""

import xgboost as xgb
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from tripwire import XGBoostTripwire

X, y = make_classification(n_samples=5000, n_features=40, n_informative=5, flip_y=0.1, random_state=0)
X_train, X_val, y_train, y_val = train_test_split(X, y, train_size=300, random_state=0)

# 1. xgboost.train: the default rules (config=None), stopping on overfit.
dtrain, dval = xgb.DMatrix(X_train, y_train), xgb.DMatrix(X_val, y_val)
tripwire = XGBoostTripwire(stop_on=["overfit"], labels=y_train)  # labels= enables class_imbalance
booster = xgb.train(
    {"max_depth": 16, "min_child_weight": 0, "reg_lambda": 0, "eta": 0.3, "objective": "binary:logistic"},
    dtrain, num_boost_round=500,
    evals=[(dtrain, "train"), (dval, "validation")],  # "train" -> loss, the last other one -> val_loss
    callbacks=[tripwire],  # first in the list: XGBoost skips later callbacks once one stops training
    verbose_eval=False,
)
print(f"\ntrained {booster.num_boosted_rounds()} of 500 rounds; stopped by: {tripwire.stopped_by.rule}")
for finding in tripwire.findings:  # also alerted (Python logging by default) and in the run record
    print(" -", finding)
print("run record:", tripwire.record_path)
# The findings also travel with the model (booster attributes), e.g. back from dask workers:
assert XGBoostTripwire.findings_of(booster) == tripwire.findings

# 2. The sklearn API: callbacks are a constructor argument (clone / GridSearchCV safe).
X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, n_redundant=5, flip_y=0.05,
                           random_state=0)
X_train, X_val, y_train, y_val = train_test_split(X, y, train_size=4000, random_state=0)
watch = XGBoostTripwire(labels=y_train, log_dir=False)
model = xgb.XGBClassifier(n_estimators=500, max_depth=3, learning_rate=0.1, early_stopping_rounds=10,
                          callbacks=[watch])
# sklearn names the eval sets validation_0, validation_1, ...: with two or more, tripwire takes
# the first as the training data and the last as the validation data
model.fit(X_train, y_train, eval_set=[(X_train, y_train), (X_val, y_val)], verbose=False)
print(f"\nXGBClassifier: best round {model.best_iteration}, {len(watch.findings)} findings")
