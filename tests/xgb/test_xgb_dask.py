"""xgboost.dask on a 2-worker LocalCluster: each worker runs its own copy of the callback.

Both copies must stop at the same round (a worker left training would block forever in the
next histogram allreduce: the timeout turns that into a failure), the findings must reach the
client through the returned booster, and only rank 0 writes the run record.
"""

from __future__ import annotations

import pytest

xgb = pytest.importorskip("xgboost")
pytest.importorskip("xgboost.dask")  # needs dask[distributed] and dask[dataframe] (pandas)

import dask.array as da
from distributed import Client, LocalCluster
from xgboost import dask as dxgb

from tripwire import RuleTriggered, XGBoostTripwire

pytestmark = [pytest.mark.xgboost, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as c:
        yield c


def data(client):
    X = da.random.RandomState(0).normal(size=(4000, 6), chunks=(1000, 6))
    y = X[:, 0] + da.random.RandomState(1).normal(size=4000, chunks=1000)
    return dxgb.DaskDMatrix(client, X, y)


def test_workers_stop_together_and_findings_reach_the_client(client, tmp_path):
    cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 5}}}, stop_on=["tree_depth"], interval=5,
                         log_dir=tmp_path)
    d = data(client)
    out = dxgb.train(client, {"max_depth": 9, "min_child_weight": 0}, d, 40, evals=[(d, "train")],
                     callbacks=[cb])
    bst = out["booster"]
    [finding] = XGBoostTripwire.findings_of(bst)
    assert finding.kind == "tree_depth" and finding.step == 0  # round 0 is sampled, and its tree is deep
    assert XGBoostTripwire.stopped_by_of(bst) == finding
    assert bst.num_boosted_rounds() == 1 == len(out["history"]["train"]["rmse"])
    assert cb.findings == []  # the client's copy never trained: read the booster
    assert len(list(tmp_path.iterdir())) == 1  # one run record, from rank 0


def test_raise_on_the_workers_reaches_the_client(client):
    cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 5, "actions": ["raise"]}}}, interval=5,
                         log_dir=False)
    d = data(client)
    with pytest.raises(RuleTriggered) as err:
        dxgb.train(client, {"max_depth": 9, "min_child_weight": 0}, d, 40, callbacks=[cb])
    assert err.value.finding.kind == "tree_depth" and err.value.finding.step == 0
