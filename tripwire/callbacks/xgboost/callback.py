"""`XGBoostTripwire`: tripwire as an ``xgboost.callback.TrainingCallback``.

Every ``interval`` boosting rounds (rounds 0, ``interval``, ...: :meth:`tripwire.Monitor.due`,
with XGBoost's 0-based round index as the step) the callback builds one
:class:`~tripwire.stats.Sample` of what the enabled rules need, and nothing else:

- ``tree_depth``: the deepest tree added since the previous sample, read from a JSON dump of a
  slice holding only those rounds (``booster[a:b]``), never the whole model;
- ``feature_importance``: each feature's share of the model's total gain (features never split
  on count as 0), kept up to date from the same slice;
- ``loss`` / ``val_loss``: the latest train/validation metric from ``evals_log``, turned
  lower-is-better (``1 - auc``); see :mod:`tripwire.callbacks.xgboost.evals` for which eval set
  and metric are used, or pass ``train_set``, ``val_set``, ``metric``. What was chosen is logged
  once and kept in the booster attribute ``tripwire_losses`` (``loss = train-logloss, ...``);
- ``label_count``: the class counts of ``labels=``, once (callbacks never see the DMatrix, so
  ``class_imbalance`` needs the labels handed over);
- ``heldout_importance``: with ``eval_data=(X_val, y_val)``, each feature's permutation importance
  on those held-out rows as a z-score (:mod:`tripwire.callbacks.xgboost.heldout`), at round 10,
  then each time the model has doubled, and at the last sample; ``low_feature_importance``
  then also calls a feature useless when it does nothing measurable on rows the trees never saw.

The trees are read only on sampled rounds, from a slice of the rounds since the previous sample,
so nothing is missed between samples and the cost per round does not grow with the model.

A finding with the ``stop`` action ends training at that round (``after_iteration`` returns
True, after recording it), ``raise`` raises :class:`~tripwire.errors.RuleTriggered` and
``checkpoint`` saves the booster into the run directory. Findings are on the callback
(``cb.findings``, ``cb.stopped_by``) and in the booster's attributes, so they survive
``save_model`` and come back from dask workers: :meth:`XGBoostTripwire.findings_of`.

Distributed (``xgboost.dask``, spark): every worker runs its own copy of the callback. The
statistics come from the model and ``evals_log``, which are identical on every worker, so all
workers reach the same findings and stop at the same round; ``eval_data`` travels with the pickled
callback and its shuffles are seeded, so its held-out importance is the same on every worker too.
Only rank 0 sends alerts, writes the run record and saves checkpoints.

Failures of tripwire's own code (reading the trees, ``evals_log``, the labels, the booster's
attributes) never end the training: each part runs under ``monitor.guard`` and is switched off
with one warning naming it (``strict=True`` raises instead). What fails there is a function of
the model and ``evals_log``, so on dask every worker switches off the same part at the same
round and they still decide alike. A setting that names something the run does not have
(``val_set``, ``metric``, regression ``labels=``) is a :class:`~tripwire.ConfigError`, raised.

Example:
    >>> import numpy as np, xgboost as xgb
    >>> from tripwire import XGBoostTripwire
    >>> X = np.random.default_rng(0).normal(size=(500, 4))
    >>> cb = XGBoostTripwire({"rules": {"tree_depth": {"max_depth": 2}}}, stop_on=["tree_depth"], log_dir=False)
    >>> bst = xgb.train({"max_depth": 3}, xgb.DMatrix(X, X.sum(axis=1)), 50, callbacks=[cb])  # doctest: +ELLIPSIS
    tripwire: 1 finding ...
    >>> cb.stopped_by.rule, bst.num_boosted_rounds(), XGBoostTripwire.findings_of(bst) == cb.findings
    ('tree_depth', 1, True)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tripwire.callbacks.missing_framework import missing_framework

try:
    from xgboost.callback import TrainingCallback
except ModuleNotFoundError as exc:
    raise missing_framework("XGBoostTripwire", exc) from exc

from tripwire.arguments import shared_arguments
from tripwire.callbacks.xgboost.evals import EvalReader
from tripwire.callbacks.xgboost.heldout import HeldOut
from tripwire.callbacks.xgboost.labels import count_labels
from tripwire.callbacks.xgboost.trees import TreeTracker, booster_kind, learning_rate, normalized
from tripwire.config import FROM_CONFIG, Config, FromConfig
from tripwire.errors import ConfigError
from tripwire.failopen import FailOpen
from tripwire.finding import Finding
from tripwire.monitor import Monitor
from tripwire.stats import Need, Sample

__all__ = ["XGBoostTripwire"]

log = logging.getLogger("tripwire")

FINDINGS_ATTR = "tripwire_findings"
STOPPED_ATTR = "tripwire_stopped_by"
LOSSES_ATTR = "tripwire_losses"

#: the parts switched off on their own when they fail, as the warning and the summary name them
LABELS = "label statistics"
TREES = "reading the trees"  # preparing the tree statistics and slicing the new rounds: both off
DEPTH = "tree depth"
IMPORTANCE = "feature importance"
HELDOUT = "held-out importance"
LOSSES = "losses from evals_log"
PUBLISH = "storing the findings in the booster"


@dataclass
class _Session:
    """State of one training session; never pickled (dropped by ``__getstate__``)."""

    needs: dict[str, list[Need]]
    reader: EvalReader
    tracker: TreeTracker | None
    round: int = -1
    sampled: int = -1
    evals_log: dict = field(default_factory=dict)
    labels_sent: bool = False
    eta: float | None = None
    heldout: HeldOut | None = None


def _count(guard: FailOpen, labels: Any) -> dict[str, float] | None:
    """Class counts of ``labels=``; None when counting fails (``class_imbalance`` then gets none)."""
    try:
        return count_labels(labels)
    except ConfigError:  # regression targets: the setting is wrong, not our code
        raise
    except Exception as exc:  # noqa: BLE001 - switched off with a warning (strict: raised)
        guard.fail(LABELS, exc)
        return None


def _rank() -> int:
    try:
        from xgboost import collective

        return int(collective.get_rank())
    except Exception:  # noqa: BLE001 - no communicator: a single process
        return 0


@shared_arguments
class XGBoostTripwire(TrainingCallback):
    """Catch broken boosting runs while they train: tree depth, feature importance, losses, labels.

    Args:
        config: path, YAML text, dict, :class:`~tripwire.config.Config`, or None for the default
            rule set (the rules that apply to XGBoost).
        {shared arguments}
        labels: the training labels, for ``class_imbalance``; counted once, only counts are kept.
        eval_data: ``(X_val, y_val)``, held-out rows never trained on (the validation set), for the
            held-out importance ``low_feature_importance`` reads (a callback never sees the
            eval DMatrix, so the rows are handed over; at most 1000 are kept).
        train_set: name of the eval set that is the training data (default: the first named
            like ``train``; sklearn: ``validation_0`` when there are two or more).
        val_set: name of the validation eval set (default: the last other one).
        metric: the metric used as the loss (default: the last lower-is-better one reported).
        maximize: whether ``metric`` rises as the model improves (default: known for the built-in
            metrics; rising metrics are used as ``1 - value``).

    Attributes (of the latest training): ``findings``, ``stopped_by``, ``record_path``, and
    ``switched_off``: ``{part: "Error: message"}`` of the parts of tripwire that failed and were
    switched off (also listed in the end-of-run summary); ``monitor``: the :class:`tripwire.Monitor`
    behind them, restarted by each training.

    Put it first in ``callbacks``: XGBoost stops calling the later callbacks of a round once one
    returns True. One instance serves one training at a time; each ``train``/``fit`` starts fresh.
    """

    def __init__(self, config: Any = None, *, stop_on: Iterable[str] = (), interval: int | None = None,
                 log_dir: str | bool | FromConfig | None = FROM_CONFIG, strict: bool | None = None,
                 labels: Any = None, train_set: str | None = None, val_set: str | None = None,
                 metric: str | None = None, maximize: bool | None = None, run_name: str | None = None,
                 eval_data: Any = None) -> None:
        super().__init__()
        #: one monitor for the callback's life, restarted by each training (it pickles without its
        #: open record and alert threads, for the sklearn API's copies and the dask workers)
        self.monitor = Monitor(config, stop_on=stop_on, interval=interval, log_dir=log_dir, strict=strict,
                               framework="xgboost", run_name=run_name)
        self.train_set, self.val_set, self.metric, self.maximize = train_set, val_set, metric, maximize
        self.label_counts = None if labels is None else _count(self.monitor.guard, labels)
        self.eval_data = None if eval_data is None else HeldOut(eval_data)
        self._off_from_the_start = dict(self.monitor.guard.disabled)  # named again after each restart
        self._session: _Session | None = None

    @property
    def config(self) -> Config:
        return self.monitor.config

    @property
    def stop_on(self) -> tuple[str, ...]:
        return self.monitor.stop_on

    @property
    def interval(self) -> int:
        return self.monitor.interval

    @property
    def findings(self) -> list[Finding]:
        return self.monitor.findings

    @property
    def stopped_by(self) -> Finding | None:
        return self.monitor.stopped_by

    @property
    def record_path(self) -> str | None:
        return self.monitor.record_path

    @property
    def switched_off(self) -> dict[str, str]:
        return dict(self.monitor.guard.disabled)

    # pickling (sklearn clone, dask): drop the per-training state, keep settings and results
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_session"] = None
        return state

    def __repr__(self) -> str:
        return f"XGBoostTripwire(interval={self.interval}, stop_on={list(self.stop_on)})"

    # TrainingCallback
    def before_training(self, model: Any) -> Any:
        monitor = self.monitor
        monitor.restart(is_main=_rank() == 0)
        monitor.guard.disabled.update(self._off_from_the_start)
        needs: dict[str, list[Need]] = {}
        for need in monitor.needs():
            needs.setdefault(need.stat, []).append(need)
        kind = booster_kind(model)
        depth, importance = "tree_depth" in needs, "feature_importance" in needs
        tracker = None
        if (depth or importance) and kind in ("gbtree", "dart"):
            tracker = monitor.guard.call(TREES, TreeTracker, model, depth=depth, importance=importance)
        elif depth or importance:
            log.info("tripwire: no tree statistics for a %s model; tree rules stay silent", kind or "cross-validation")
        reader = EvalReader(train_set=self.train_set, val_set=self.val_set, metric=self.metric,
                            maximize=self.maximize)
        self._session = _Session(needs, reader, tracker, sampled=model.num_boosted_rounds() - 1,
                                 eta=learning_rate(model) if "epochs_since_val" in needs else None,
                                 heldout=self._heldout(model, tracker, needs))
        return model

    def _heldout(self, model: Any, tracker: TreeTracker | None, needs: dict[str, list[Need]]) -> HeldOut | None:
        """The held-out rows, bound to this model, when a rule reads them and the model allows."""
        held = self.eval_data
        if held is None or tracker is None or "heldout_importance" not in needs:
            return None
        held.bind(model)  # a column count that differs from the model's is a ConfigError, raised
        held.restart()
        if not held.usable:
            log.info("tripwire: no held-out importance for objective %r", held.objective or "unknown")
            return None
        return held

    def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
        s = self._session
        if s is None:
            return False
        s.round, s.evals_log = model.num_boosted_rounds() - 1, evals_log
        try:
            if evals_log and not s.reader.resolved and self.monitor.guard.ok(LOSSES):
                self._resolve(s, evals_log)
            if not self.monitor.due(s.round):
                return False
            return self._decide(model, s)
        except BaseException as exc:  # training ends here without after_training: flush what we have
            self._close(model, error=exc)
            raise

    def after_training(self, model: Any) -> Any:
        s = self._session
        if s is None:
            return model
        try:
            if s.round > s.sampled:  # the rounds after the last sample: recorded, too late to stop
                self._decide(model, s, final=True)
            elif s.heldout is not None and s.heldout.due(s.round + 1, final=True) and self.monitor.guard.ok(HELDOUT):
                self._final_heldout(model, s)
        finally:
            self._close(model)
        return model

    def _final_heldout(self, model: Any, s: _Session) -> None:
        """The last round was a sampled one, measured on the held-out rows earlier (the model was
        smaller then): measure the final model and hand the rule its importance again, nothing else."""
        shares = normalized(s.tracker.gain, s.tracker.features)
        if not shares:
            return
        heldout = self.monitor.guard.call(HELDOUT, s.heldout.zscores, model, s.tracker.features, s.tracker.gain)
        sample = Sample(step=s.round, epoch=None)
        for stat, value in (("feature_importance", shares), ("feature_chances", s.tracker.chances),
                            ("boosting_progress", s.tracker.boosting_progress), ("heldout_importance", heldout)):
            self._add(sample, s, stat, value)
        self.monitor.execute(self.monitor.process(sample), _BoosterSink(model, self.monitor.is_main))

    def _decide(self, model: Any, s: _Session, final: bool = False) -> bool:
        """Evaluate a sample (``final``: the last, after training) and act on it; True when training must stop."""
        decision = self.monitor.process(self._sample(model, s, final))
        if decision.findings:
            self._publish(model)  # before a checkpoint: the saved booster carries the findings
        sink = _BoosterSink(model, self.monitor.is_main)
        self.monitor.execute(decision, sink)
        return sink.stopping

    def _close(self, model: Any, error: BaseException | None = None) -> None:
        """End the session: findings into the booster, alerts and the run record flushed, how it
        ended (``error``: the exception leaving training) recorded."""
        try:
            self._publish(model)
        finally:  # strict: the error goes on, the session still ends
            self.monitor.close(error=error)
            self._session = None

    def _resolve(self, s: _Session, evals_log: dict) -> None:
        """Pick the eval sets and the metric; a name the user gave that the run lacks is raised."""
        try:
            s.reader.resolve(evals_log)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - switched off with a warning (strict: raised)
            self.monitor.guard.fail(LOSSES, exc)
            return
        if self.monitor.is_main and ({"loss", "val_loss"} & s.needs.keys()):
            log.info("tripwire: XGBoost losses: %s", s.reader.description)

    def _sample(self, model: Any, s: _Session, final: bool = False) -> Sample:
        sample = Sample(step=s.round, epoch=None)
        rounds, s.sampled = s.round - s.sampled, s.round
        if s.tracker is not None:
            trees = self._trees(model, s)
            self._add(sample, s, "tree_depth", trees.get("depth"))
            self._add(sample, s, "feature_importance", trees.get("importance"))
            self._add(sample, s, "feature_chances", trees.get("chances"))
            self._add(sample, s, "boosting_progress", trees.get("progress"))
            if s.heldout is not None and "importance" in trees and s.heldout.due(s.round + 1, final) \
                    and self.monitor.guard.ok(HELDOUT):
                self._add(sample, s, "heldout_importance",
                          self.monitor.guard.call(HELDOUT, s.heldout.zscores, model, s.tracker.features,
                                                         s.tracker.gain))
        if "loss" in s.needs or "val_loss" in s.needs:
            train, val = self.monitor.guard.call(LOSSES, s.reader.losses, s.evals_log, fallback=(None, None))
            self._add(sample, s, "loss", train)
            self._add(sample, s, "val_loss", val)
            if val is not None and s.eta is not None:
                # a round adds eta of a full-strength tree: the training a validation stands for
                self._add(sample, s, "epochs_since_val", min(rounds * s.eta, 1.0))
        if self.label_counts and not s.labels_sent:
            s.labels_sent = True
            self._add(sample, s, "label_count", dict(self.label_counts))
        return sample

    def _trees(self, model: Any, s: _Session) -> dict[str, Any]:
        """Depth and importance of the rounds since the previous sample, each part on its own."""
        guard, tracker, out = self.monitor.guard, s.tracker, {}
        wanted = [(key, part, fn) for key, part, want, fn in (("depth", DEPTH, tracker.want_depth, tracker.depth),
                                                              ("importance", IMPORTANCE, tracker.want_importance,
                                                               tracker.importance))
                  if want and guard.ok(part)]
        new = guard.call(TREES, tracker.new_rounds, model) if wanted else None
        if new is None:
            return out
        for key, part, fn in wanted:
            value = guard.call(part, fn, new)
            if value is not None and value != {}:  # an importance with no gain yet is empty
                out[key] = value
        if "importance" in out:
            out["chances"] = tracker.chances
            out["progress"] = tracker.boosting_progress
        return out

    @staticmethod
    def _add(sample: Sample, s: _Session, stat: str, value: Any) -> None:
        if value is None:
            return
        for need in s.needs.get(stat, ()):
            sample.add(need, value)

    def _publish(self, model: Any) -> None:
        """Write the findings into the booster's attributes (they travel with the model)."""
        self.monitor.guard.call(PUBLISH, lambda: model.set_attr(**self._attributes()))

    def _attributes(self) -> dict[str, str | None]:
        reader = self._session.reader
        return {
            FINDINGS_ATTR: json.dumps([f.to_dict() for f in self.findings]),
            STOPPED_ATTR: None if self.stopped_by is None else self.stopped_by.to_json(),
            LOSSES_ATTR: reader.description if reader.resolved else None,
        }

    # reading findings back from a model (dask workers, a saved model)
    @staticmethod
    def findings_of(model: Any) -> list[Finding]:
        """The findings stored in a Booster's (or fitted sklearn model's) attributes."""
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        text = booster.attr(FINDINGS_ATTR)
        return [Finding.from_dict(d) for d in json.loads(text)] if text else []

    @staticmethod
    def stopped_by_of(model: Any) -> Finding | None:
        """The finding that stopped the training of a Booster (or fitted sklearn model), if any."""
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        text = booster.attr(STOPPED_ATTR)
        return Finding.from_dict(json.loads(text)) if text else None


class _BoosterSink:
    """Carries out decisions on the booster: the main worker saves it; a stop is the return value
    of ``after_iteration``."""

    checkpoint_suffix, checkpoint_root = ".ubj", "."

    def __init__(self, model: Any, is_main: bool) -> None:
        self.model, self.is_main, self.stopping = model, is_main, False

    def stop(self, finding: Finding) -> None:
        self.stopping = True

    def save_checkpoint(self, path: str) -> None:
        if self.is_main and hasattr(self.model, "save_model"):  # cross-validation's model has none
            self.model.save_model(path)
