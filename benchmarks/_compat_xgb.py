"""XGBoost cases of the compatibility matrix: every objective x booster (``gbtree``, ``dart``,
``gblinear``) through ``xgboost.train``, and a few through the sklearn API, each boosted for 4
rounds with and without ``XGBoostTripwire``.

"Unchanged" means the same per-round ``evals_log`` values, the same margin predictions and the
same tree dump. Statistics that apply: ``loss`` from the eval sets, and for tree boosters
``tree_depth`` and ``feature_importance`` (``gblinear`` has no trees: their absence is expected).

Example:
    >>> [c.name for c in train_cases()][:2]
    ['binary:logistic gbtree', 'binary:logistic dart']
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from _compat_core import (
    Outcome,
    Run,
    Warnings,
    default_config,
    every_rule_config,
    findings_of,
    judge,
    keep_samples,
    timed,
)
from tripwire import XGBoostTripwire

ROUNDS, ROWS, FEATURES = 4, 96, 5
BOOSTERS = ("gbtree", "dart", "gblinear")
#: objective -> (label kind, extra parameters)
OBJECTIVES: dict[str, tuple[str, dict[str, Any]]] = {
    "binary:logistic": ("binary", {}), "binary:logitraw": ("binary", {}), "binary:hinge": ("binary", {}),
    "multi:softprob": ("multi", {"num_class": 3}), "multi:softmax": ("multi", {"num_class": 3}),
    "reg:squarederror": ("real", {}), "reg:squaredlogerror": ("positive", {}), "reg:logistic": ("unit", {}),
    "reg:absoluteerror": ("real", {}), "reg:pseudohubererror": ("real", {}),
    "reg:quantileerror": ("real", {"quantile_alpha": 0.5}), "reg:tweedie": ("positive", {}),
    "reg:gamma": ("positive", {}), "count:poisson": ("count", {}),
    "rank:ndcg": ("rank", {}), "rank:pairwise": ("rank", {}), "rank:map": ("rank_binary", {}),
    "survival:cox": ("cox", {}), "survival:aft": ("aft", {}),
}
#: sklearn estimators and the objective each is fitted with.
SKLEARN: list[tuple[str, str]] = [
    ("XGBClassifier", "binary:logistic"), ("XGBClassifier", "multi:softprob"), ("XGBRegressor", "reg:squarederror"),
    ("XGBRegressor", "count:poisson"), ("XGBRanker", "rank:ndcg"),
]  # the XGBRF* estimators refuse callbacks (NotImplementedError from xgboost)


@dataclass
class Case:
    group: str
    name: str
    fit: Callable[[dict | None], Run]


def data(kind: str, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Features every one of which matters, and the label fields ``kind`` needs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    score = x @ np.linspace(1.0, 0.5, FEATURES) + 0.3 * rng.normal(size=ROWS)
    if kind in ("binary", "rank_binary"):
        label = (score > 0).astype("float32")
    elif kind == "multi":
        label = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype("float32")
    elif kind == "real":
        label = score.astype("float32")
    elif kind == "unit":
        label = (1 / (1 + np.exp(-score))).astype("float32")
    elif kind == "positive":
        label = np.exp(0.3 * score).astype("float32")
    elif kind == "count":
        label = rng.poisson(np.exp(0.3 * score)).astype("float32")
    elif kind == "rank":
        label = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3])).astype("float32")
    elif kind == "cox":
        time = np.exp(0.3 * score) + 0.1
        label = np.where(rng.random(ROWS) < 0.8, time, -time).astype("float32")  # negative: censored
    else:  # aft
        lower = np.exp(0.3 * score).astype("float32")
        upper = np.where(rng.random(ROWS) < 0.8, lower, np.inf).astype("float32")
        return x, {"label_lower_bound": lower, "label_upper_bound": upper}
    fields = {"label": label}
    if kind.startswith("rank"):
        fields["qid"] = np.repeat(np.arange(ROWS // 8), 8)
    return x, fields


def _params(objective: str, booster: str) -> dict[str, Any]:
    params = {"objective": objective, "booster": booster, "eta": 0.3, "nthread": 1, "seed": 0,
              **OBJECTIVES[objective][1]}
    if booster != "gblinear":
        params["max_depth"] = 3
    if booster == "dart":
        params["rate_drop"] = 0.2
    if objective == "survival:aft":
        params["eval_metric"] = "aft-nloglik"
    return params


def _callback(config: dict | None) -> tuple[list, XGBoostTripwire | None, list, list]:
    """``(callbacks, callback, samples, monitors)``: the monitor of each training (of copies made by
    the sklearn API too) and every sample it processes are kept."""
    if config is None:
        return [], None, [], []
    samples: list = []
    monitors: list = []

    class Watched(XGBoostTripwire):
        def before_training(self, model):
            model = super().before_training(model)
            vars(self.monitor).pop("process", None)  # a copy's monitor: the watch of the one it copied
            monitors.append(self.monitor)
            keep_samples(self.monitor, samples)
            return model

    tw = Watched(config, log_dir=False)
    return [tw], tw, samples, monitors


def _disabled(monitors: list) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in monitors:
        out.update(getattr(getattr(m, "guard", None), "disabled", {}))
    return out


#: what a tripwire warning about a lost statistic names
_NAMED = {"loss": ("loss", "evals_log"), "tree_depth": ("tree depth", "tree_depth"),
          "feature_importance": ("feature importance", "feature_importance")}


def _gaps(samples: list, trees: bool, warned: Warnings) -> list[str]:
    """Statistics that apply, neither collected nor named in a tripwire warning."""
    want = ["loss"] + (["tree_depth", "feature_importance"] if trees else [])
    have = {k.split("[")[0] for s in samples for k in s.stats}
    return [f"no {k} statistics" for k in want if k not in have
            and not any(word in m for m in warned.messages for word in _NAMED[k])]


def train_fit(objective: str, booster: str) -> Callable[[dict | None], Run]:
    """A fit of ``xgboost.train`` for one objective and booster, with a callback for ``config``."""

    def fit(config: dict | None) -> Run:
        x, fields = data(OBJECTIVES[objective][0])
        dtrain, dval = xgb.DMatrix(x, **fields), xgb.DMatrix(x[::2], **{k: v[::2] for k, v in fields.items()})
        callbacks, tw, samples, monitors = _callback(config)
        evals_log: dict = {}
        with Warnings() as warned, contextlib.redirect_stdout(io.StringIO()):
            booster_ = xgb.train(_params(objective, booster), dtrain, ROUNDS, evals=[(dtrain, "train"), (dval, "val")],
                                 evals_result=evals_log, callbacks=callbacks, verbose_eval=False)
        run = Run(losses=[v for part in evals_log.values() for series in part.values() for v in series],
                  weights=[booster_.predict(dtrain, output_margin=True),
                           np.frombuffer("".join(booster_.get_dump()).encode(), dtype=np.uint8)])
        if tw is not None:
            run.findings, run.disabled = findings_of(tw), _disabled(monitors)
            run.missing = _gaps(samples, booster != "gblinear", warned)
        return run

    return fit


def sklearn_fit(estimator: str, objective: str) -> Callable[[dict | None], Run]:
    """A fit of an sklearn estimator with ``callbacks=[XGBoostTripwire(...)]`` and an eval set."""

    def fit(config: dict | None) -> Run:
        x, fields = data(OBJECTIVES[objective][0])
        callbacks, tw, samples, monitors = _callback(config)
        kwargs: dict[str, Any] = {"n_estimators": ROUNDS, "max_depth": 3, "n_jobs": 1, "random_state": 0,
                                  "callbacks": callbacks or None}
        if estimator != "XGBRanker":
            kwargs["objective"] = objective
        model = getattr(xgb, estimator)(**kwargs)
        # two eval sets: validation_0 (the training data) gives the loss, validation_1 the val_loss
        fit_kwargs: dict[str, Any] = {"eval_set": [(x, fields["label"]), (x[::2], fields["label"][::2])],
                                      "verbose": False}
        if "qid" in fields:
            fit_kwargs.update(qid=fields["qid"], eval_qid=[fields["qid"], fields["qid"][::2]])
        with Warnings() as warned, contextlib.redirect_stdout(io.StringIO()):
            model.fit(x, fields["label"], **fit_kwargs)
        booster_ = model.get_booster()
        losses = [v for part in model.evals_result().values() for series in part.values() for v in series]
        run = Run(losses=losses, weights=[booster_.predict(xgb.DMatrix(x), output_margin=True),
                                          np.frombuffer("".join(booster_.get_dump()).encode(), dtype=np.uint8)])
        if tw is not None:  # the sklearn API trains a copy of the callback: findings from the booster
            run.findings = [f"{f.rule}: {f.subject}" if f.subject else f.rule
                            for f in XGBoostTripwire.findings_of(booster_)]
            run.disabled = _disabled(monitors)
            run.missing = _gaps(samples, True, warned)
        return run

    return fit


def train_cases() -> list[Case]:
    return [Case("xgboost.train", f"{objective} {booster}", train_fit(objective, booster))
            for objective in OBJECTIVES for booster in BOOSTERS]


def sklearn_cases() -> list[Case]:
    return [Case("sklearn", f"{estimator} {objective}", sklearn_fit(estimator, objective))
            for estimator, objective in SKLEARN]


def run_case(case: Case, framework: str = "xgboost") -> Outcome:
    """Plain, every-rule and default-rule fits of one case, judged."""
    plain = timed(lambda: case.fit(None))
    if plain.error is not None:
        return judge(framework, case.group, case.name, plain, None, None)
    every = timed(lambda: case.fit(every_rule_config("xgboost")))
    default = timed(lambda: case.fit(default_config()))
    return judge(framework, case.group, case.name, plain, every, default)
