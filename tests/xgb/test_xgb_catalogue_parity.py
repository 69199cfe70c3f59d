"""The XGBoost callback keeps to the statistics catalogue: asked for every statistic there is, it
sends exactly those ``COLLECTED["xgboost"]`` claims."""

from __future__ import annotations

import pytest

xgb = pytest.importorskip("xgboost")

from tripwire import XGBoostTripwire
from tripwire.monitor import Monitor
from tripwire.stats import CATALOGUE, COLLECTED, Need

pytestmark = pytest.mark.xgboost


def test_the_callback_sends_exactly_the_statistics_the_catalogue_claims_for_xgboost(data, monkeypatch):
    needs = {Need(stat, info.options) for stat, info in CATALOGUE.items()} | {Need(stat) for stat in CATALOGUE}
    monkeypatch.setattr(Monitor, "needs", lambda self: needs)  # asked for everything, activations included
    samples = []
    process = Monitor.process
    monkeypatch.setattr(Monitor, "process", lambda self, sample: samples.append(sample) or process(self, sample))
    X, y = data(n=400)
    callback = XGBoostTripwire({"rules": {}}, interval=1, log_dir=False, labels=y, eval_data=(X[300:], y[300:]))
    train, val = xgb.DMatrix(X[:300], y[:300]), xgb.DMatrix(X[300:], y[300:])
    # 11 rounds: the held-out importance is first measured at round 10
    xgb.train({"objective": "binary:logistic", "max_depth": 3}, train, 11, evals=[(train, "train"), (val, "val")],
              verbose_eval=False, callbacks=[callback])
    sent = {key for s in samples for key in s.stats}
    claimed = {need.key for need in needs if need.stat in COLLECTED["xgboost"]}
    assert sent == claimed, (f"claimed but not sent: {sorted(claimed - sent)}; "
                             f"sent but not claimed: {sorted(sent - claimed)}")
