"""`Monitor`: the framework-free core that every callback drives.

A callback hands it :class:`~tripwire.stats.Sample` objects; the monitor runs the engine,
records series and findings, sends alerts (main process only), calls user actions, and returns
a :class:`~tripwire.decision.Decision`, which :meth:`Monitor.execute` carries out through the
callback's :class:`~tripwire.decision.DecisionSink` (checkpoint, stop, raise).

Example:
    >>> m = Monitor({"rules": {"nonfinite": {}}, "log_dir": None}, framework="torch")
    >>> d = m.process(Sample(step=4, epoch=0, stats={"loss_nonfinite": {None: 1.0}}))
    >>> d.stop.rule, m.stopped_by is d.stop
    ('nonfinite', True)
    >>> m.close()  # prints the end-of-run summary
    tripwire: 1 finding (1 error); training stopped at step 4 by nonfinite
      rule       subject  first step  message
      nonfinite  loss              4  NaN/Inf in the loss at step 4
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from tripwire.arguments import shared_arguments
from tripwire.config import ACTIONS, FROM_CONFIG, REMEDIATIONS, ChannelsConfig, Config, FromConfig
from tripwire.decision import (
    CHECKPOINT_FOLDER,
    Decision,
    DecisionSink,
    LrSink,
    RollbackSink,
    checkpoint_name,
    stand_in,
)
from tripwire.engine import Engine
from tripwire.errors import ConfigError, RuleTriggered
from tripwire.failopen import FailOpen
from tripwire.finding import Finding
from tripwire.remediation import Effects
from tripwire.run_end import RunEnd
from tripwire.schedule import Schedule
from tripwire.stats import Need, Sample
from tripwire.wording import step_word

log = logging.getLogger("tripwire")

#: the callbacks that carry out every remediation action, for the error of one that cannot
_CARRIED_OUT_BY = "LightningTripwire, tripwire.torch.Tripwire, TripwireCallback (HF Trainer), KerasTripwire"

#: the frameworks whose adapters time their steps, so that ``overhead_budget`` can set the interval
#: (Keras compiles its interval into the train step; XGBoost's rounds keep theirs)
_BUDGETED = (None, "torch")

__all__ = ["Decision", "DecisionSink", "Monitor"]


@shared_arguments
class Monitor:
    """Engine + actions + run record for one training run.

    Steps: a step is the 0-based index of an optimizer step (XGBoost: of a boosting round), which
    is also the number of steps completed before it; Lightning's ``trainer.global_step`` when the
    step's batch starts, XGBoost's ``epoch``. The schedule is the monitor's: step ``S`` is sampled
    when :meth:`due` says so (``S % interval == 0``: 0, 10, 20, ...), so the first sample comes
    with the first step, and a run resumed at step ``S`` samples the steps an uninterrupted run
    would. A sample of a sampled step holds that step's statistics (its batch, gradients, the
    weights it updated) and carries its step. A sample taken between steps (the initial weights
    and data, a validation, the end of an epoch) carries the number of steps completed so far,
    which is the next step's index. A finding's ``step`` is its sample's.

    Args:
        config: path, YAML text, dict, :class:`~tripwire.config.Config` or None (defaults).
        {shared arguments}
        framework: ``torch``, ``keras`` or ``xgboost``.
        is_main: whether this process alerts and writes the record (rank 0).
        remediations: the remediation actions (``skip_step``) the adapter can carry out.

    Raises:
        ConfigError: an invalid config, a ``package.module:function`` action that does not
            resolve to a callable (actions are imported here, never at a finding), or a
            remediation the adapter cannot carry out.
    """

    def __init__(self, config: Any = None, *, stop_on: Iterable[str] = (), interval: int | None = None,
                 log_dir: str | bool | FromConfig | None = FROM_CONFIG, strict: bool | None = None,
                 framework: str | None = None, is_main: bool = True, run_name: str | None = None,
                 remediations: Iterable[str] = ()) -> None:
        cfg = Config.load(config)
        overrides: dict[str, Any] = {"interval": interval, "strict": strict}
        if log_dir is None or log_dir is False:
            cfg = cfg.model_copy(update={"log_dir": None})
        elif log_dir is not FROM_CONFIG:
            overrides["log_dir"] = os.fspath(log_dir) if isinstance(log_dir, os.PathLike) else log_dir
        self.config = cfg.with_overrides(**overrides)
        given_budget = self.config.budgeted and "overhead_budget" in self.config.model_fields_set
        if given_budget and framework not in _BUDGETED:  # the default budget is the torch adapters'
            raise ConfigError(f"overhead_budget is not supported by the {framework} adapter yet (its interval is "
                              f"fixed when training starts); give interval instead (without either it samples "
                              f"every 10 steps)",
                              source=self.config.source, path="overhead_budget")
        self.framework = framework
        self.engine = Engine(self.config, stop_on=stop_on, framework=framework)
        #: the adapters' instrumentation runs under this guard (see :mod:`tripwire.failopen`)
        self.guard = FailOpen(strict=self.engine.strict)
        self.is_main = is_main
        self.run_name = _check_run_name(run_name)
        self.findings: list[Finding] = []
        #: how often each finding fired again before it re-armed, by ``(rule, subject)`` (not acted on;
        #: every repeat is in the run record)
        self.repeats: dict[tuple[str, str | None], int] = {}
        self.stopped_by: Finding | None = None
        #: how the run ended, once :meth:`close` has run (also in the run record)
        self.end: RunEnd | None = None
        self.sampled_steps: set[int] = set()
        #: which steps are sampled (pinned, or following ``overhead_budget``)
        self.schedule = self._new_schedule()
        #: how often ``reduce_lr`` lowered the learning rate in this run
        self.lr_reductions = 0
        #: how often ``rollback`` restored a kept training state in this run
        self.rollbacks = 0
        #: what followed each remediation (a finding at the next sample with a training loss)
        self.effects = Effects()
        self._last_loss: float | None = None
        #: the ``package.module:function`` actions, resolved now: a finding imports nothing
        self._callables: dict[str, Callable[[Finding], Any]] = self.config.user_actions()
        self.check_remediations(remediations)
        self._alerts = None
        self._record = None
        self._last_record_path: str | None = None
        self._opened = False
        #: whether :meth:`close` prints the end-of-run summary (a caller that prints it later, with
        #: the report it writes, turns this off)
        self.print_summary = True
        self._seen_error: BaseException | None = None

    def check_remediations(self, able: Iterable[str], why: str = "") -> None:
        """Refuse a remediation this adapter cannot carry out: a ConfigError now, not a silent no-op.
        ``why``: what stands in the way, when it is the training setup rather than the adapter (an
        adapter checks again once it sees the setup).

        Example:
            >>> Monitor({"rules": {"loss_spike": {"actions": ["alert", "skip_step"]}}}, framework="xgboost")
            Traceback (most recent call last):
            ...
            tripwire.errors.ConfigError: <dict> at 'rules.loss_spike.actions': this callback cannot carry out
            skip_step; valid here: alert, stop, raise, checkpoint
            (skip_step: LightningTripwire, tripwire.torch.Tripwire, TripwireCallback (HF Trainer), KerasTripwire)
        """
        able = frozenset(able)
        for name, spec in self.config.rule_specs().items():
            for action in spec.actions or ():
                if action in REMEDIATIONS and action not in able:
                    valid = ", ".join(a for a in ACTIONS if a not in REMEDIATIONS or a in able)
                    where = f" {why}" if why else ""
                    raise ConfigError(f"this callback cannot carry out {action}{where}; valid here: {valid} "
                                      f"({action}: {_CARRIED_OUT_BY})",
                                      source=self.config.source, path=f"rules.{name}.actions")

    @property
    def stop_on(self) -> tuple[str, ...]:
        """The rule names given as ``stop_on``."""
        return self.engine.stop_on

    @property
    def interval(self) -> int:
        """Optimizer steps between sampled steps (the current one, under ``overhead_budget``)."""
        return self.schedule.interval

    def _new_schedule(self) -> Schedule:
        """Budgeted under the torch adapters unless an interval pins it; pinned under the others."""
        cfg = self.config
        budget = cfg.overhead_budget if cfg.budgeted and self.framework in _BUDGETED else None
        return Schedule(cfg.interval, budget, cfg.min_interval, cfg.max_interval)

    def due(self, step: int) -> bool:
        """Whether step ``step`` (0-based) is sampled: 0, ``interval``, 2 ``interval``, ...

        Example:
            >>> m = Monitor(interval=10, log_dir=False)
            >>> [s for s in range(35) if m.due(s)]
            [0, 10, 20, 30]
        """
        return self.schedule.due(step)

    def latest_due(self, start: int, stop: int) -> int | None:
        """The latest sampled step of ``range(start, stop)``, or None: for a framework that runs
        several steps between two of its callbacks (Keras with ``steps_per_execution > 1``).

        Example:
            >>> m = Monitor(interval=10, log_dir=False)
            >>> m.latest_due(0, 1), m.latest_due(1, 10), m.latest_due(1, 25), m.latest_due(5, 5)
            (0, None, 20, None)
        """
        return self.schedule.latest_due(start, stop)

    def needs(self) -> set[Need]:
        """Statistics the enabled rules need."""
        return self.engine.needs()

    def waiting(self, stats: Iterable[str]) -> bool:
        """Whether a rule that reads one of ``stats`` still waits for its first verdict
        (:meth:`tripwire.engine.Engine.waiting`)."""
        return self.engine.waiting(stats)

    def wants(self, stat: str) -> list[Need]:
        """The needs for one statistic name (several when rules ask for different options)."""
        return [n for n in self.needs() if n.stat == stat]

    def open(self) -> None:
        """Start alert delivery and the run record (main process only); idempotent. Configured
        rules that cannot run under this framework are logged here, once per run."""
        if self._opened:
            return
        self._opened, self.end = True, None
        if not self.is_main:
            return
        for why in self.engine.not_run.values():
            log.warning("tripwire: %s", why)
        from tripwire.alerts import AlertDispatcher

        # shadow: log-only, whatever channels the config names
        self._alerts = AlertDispatcher(ChannelsConfig() if self.config.shadow else self.config.actions,
                                       step_word=step_word(self.framework))
        if self.config.log_dir:
            from tripwire.record import RunRecord

            try:
                self._record = RunRecord.create(self.config.log_dir, self.config, run_name=self.run_name,
                                                framework=self.framework)
            except Exception as exc:  # noqa: BLE001 - losing the record must not stop training
                log.error("tripwire: cannot open the run record in %s: %s", self.config.log_dir, exc)
        # a process leaving with the run open still records how it ended; registered after the
        # record, whose own exit handler would otherwise close it first (they run last-in, first-out)
        atexit.register(self._at_exit)
        self._seen_error = getattr(sys, "last_value", None)  # an old one: not this run's

    @property
    def record_path(self) -> str | None:
        """Path of the run record file, when one is written."""
        return self._last_record_path if self._record is None else str(self._record.path)

    def process(self, sample: Sample) -> Decision:
        """Evaluate one sample and act on what it shows."""
        self.open()
        self.sampled_steps.add(sample.step)
        if self._record is not None:
            self._record.add_sample(sample)
        loss = sample.scalar("loss")
        for effect in self.effects.due(sample.step, loss):
            self._remediated(effect, effect.rule)
        findings, repeats = self.engine.judge(sample)
        decision = Decision(findings=findings, step=sample.step, epoch=sample.epoch)
        for repeat in repeats:
            key = (repeat.rule, repeat.subject)
            self.repeats[key] = self.repeats.get(key, 0) + 1
            if self._record is not None:
                self._record.add_finding(repeat, repeat=True)
        if self._alerts is not None:
            self._alerts.tick()  # a rate-limited rule's summary goes out when its window ends
        for finding in decision.findings:
            self.findings.append(finding)
            actions = self.engine.actions[finding.rule]
            if self._record is not None:
                self._record.add_finding(finding)
            if self.is_main and "alert" in actions and self._alerts is not None:
                self._alerts.send(finding)
            if "stop" in actions and decision.stop is None:
                decision.stop = finding
            if "checkpoint" in actions:
                decision.checkpoint.append(finding)
            if "raise" in actions and decision.raise_ is None:
                decision.raise_ = finding
            if "reduce_lr" in actions and decision.reduce_lr is None:
                decision.reduce_lr = finding
            if "rollback" in actions and decision.rollback is None:
                decision.rollback = finding
            if "skip_step" in actions and finding.evidence.get("steps_skipped"):
                self.effects.note(finding, "skip_step", self._last_loss)
            for action in actions:
                if ":" in action and self.is_main:
                    self._call(action, finding)
        if decision.stop is not None and self.stopped_by is None:
            self.stopped_by = decision.stop
        self._last_loss = loss if loss is not None else self._last_loss
        return decision

    def uses(self, action: str) -> bool:
        """Whether some enabled rule has ``action`` (``stop``, ``checkpoint``, ``raise``, ...)."""
        return any(action in actions for actions in self.engine.actions.values())

    def remediating_rule(self, action: str, finding: Finding | None = None) -> str | None:
        """The rule whose parameters of remediation ``action`` apply: ``finding``'s own, or, for a
        :func:`~tripwire.decision.stand_in` (another rank's rule fired) or no finding, the first rule
        with the action; None when no rule has it."""
        if finding is not None and finding.rule in self.engine.actions:
            return finding.rule
        return next((n for n, actions in self.engine.actions.items() if action in actions), None)

    def agreed(self, decision: Decision, any_rank: Callable[[bool], bool], *, stop: bool | None = None) -> Decision:
        """The decision every rank of a data-parallel run carries out: each effect that any rank's
        decision holds, with a :func:`~tripwire.decision.stand_in` finding on a rank whose own
        rules did not fire.

        Args:
            decision: this rank's decision.
            any_rank: ``flag -> bool``, true on every rank when ``flag`` is true on any (one collective).
            stop: the stop agreement, when the adapter has made it already; None: asked here.

        Only the actions some rule has cost a collective; every rank makes the same calls.
        """
        stop = any_rank(decision.stop is not None) if stop is None else stop
        checkpoint = self.uses("checkpoint") and any_rank(bool(decision.checkpoint))
        raise_ = self.uses("raise") and any_rank(decision.raise_ is not None)
        reduce_lr = self.uses("reduce_lr") and any_rank(decision.reduce_lr is not None)
        rollback = self.uses("rollback") and any_rank(decision.rollback is not None)
        return replace(decision, stop=(decision.stop or stand_in(decision, "stop")) if stop else None,
                       reduce_lr=(decision.reduce_lr or stand_in(decision, "reduce_lr")) if reduce_lr else None,
                       rollback=(decision.rollback or stand_in(decision, "rollback")) if rollback else None,
                       checkpoint=(decision.checkpoint or [stand_in(decision, "checkpoint")]) if checkpoint else [],
                       raise_=(decision.raise_ or stand_in(decision, "raise")) if raise_ else None)

    def execute(self, decision: Decision, sink: DecisionSink) -> None:
        """Carry out ``decision`` through the adapter's ``sink``: checkpoint, then stop, then raise
        (see :mod:`tripwire.decision`).

        Raises:
            RuleTriggered: the decision holds a finding with the ``raise`` action.
        """
        if decision.checkpoint:
            self._save_checkpoint(decision.checkpoint[0], sink)
        if decision.reduce_lr is not None:
            self._reduce_lr(decision.reduce_lr, sink)  # type: ignore[arg-type]
        if decision.rollback is not None and not self._rollback(decision.rollback, sink) and decision.stop is None:
            decision = replace(decision, stop=decision.rollback)  # max_rollbacks reached: stop instead
        if decision.stop is not None:
            if self.stopped_by is None:  # a stand-in: another rank's rule stopped the run
                self.stopped_by = decision.stop
            sink.stop(decision.stop)
        if decision.raise_ is not None:
            raise RuleTriggered(decision.raise_)

    def _reduce_lr(self, finding: Finding, sink: LrSink) -> None:
        """Lower the learning rate for ``finding`` (at most ``max_times`` in a run, counted over every
        rule), and record what was done as a finding of kind ``reduce_lr``. On a rank acting on a
        :func:`~tripwire.decision.stand_in`, the parameters are those of the first rule with the action."""
        name = self.remediating_rule("reduce_lr", finding)
        params = self.config.rule_specs()[name].remediation("reduce_lr")
        if self.lr_reductions >= params.max_times:
            if self.is_main:
                log.warning("tripwire: %s at step %d: reduce_lr has lowered the learning rate %d times (max_times); "
                            "not again", name, finding.step, self.lr_reductions)
            return
        try:
            before, after = sink.reduce_lr(params.factor, params.min_lr)
        except Exception as exc:  # noqa: BLE001 - a failed remediation must not stop training
            log.error("tripwire: %s: reduce_lr failed: %s", name, exc)
            return
        self.lr_reductions += 1
        self.effects.note(replace(finding, rule=name), "reduce_lr", self._last_loss)
        done = replace(finding, rule=name, kind="reduce_lr", severity="info", value=after, threshold=None,
                       message=f"reduce_lr after {name} at {step_word(self.framework)} {finding.step}: learning rate "
                               f"x{params.factor:g}, {before:.3g} -> {after:.3g} ({self.lr_reductions} of "
                               f"{params.max_times})",
                       suggestion="if the rule fires again, lower the learning rate in the config",
                       evidence={"factor": params.factor, "lr_before": before, "lr_after": after,
                                 "reductions": self.lr_reductions, "because": finding.message})
        self._remediated(done, name)

    def _rollback(self, finding: Finding, sink: RollbackSink) -> bool:
        """Roll back for ``finding`` (see :mod:`tripwire.rollback`) and record what was done as a
        finding of kind ``rollback``; False when ``max_rollbacks`` is reached (training stops)."""
        name = self.remediating_rule("rollback", finding)
        params = self.config.rule_specs()[name].remediation("rollback")
        if self.rollbacks >= params.max_rollbacks:
            if self.is_main:
                log.warning("tripwire: %s at step %d: rolled back %d times already (max_rollbacks); stopping",
                            name, finding.step, self.rollbacks)
            return False
        try:
            done = sink.rollback(finding.step)
        except Exception as exc:  # noqa: BLE001 - a failed remediation must not stop training
            log.error("tripwire: %s: rollback failed: %s", name, exc)
            return True
        if done is None:
            if self.is_main:
                log.warning("tripwire: %s at step %d: no training state kept before it; no rollback",
                            name, finding.step)
            return True
        restored, last = done
        self.rollbacks += 1
        self.effects.note(replace(finding, rule=name), "rollback", self._last_loss)
        word = step_word(self.framework)
        self._remediated(replace(
            finding, rule=name, kind="rollback", severity="info", value=float(restored), threshold=None,
            message=f"rollback after {name} at {word} {finding.step}: the model and optimizer state of {word} "
                    f"{restored} restored; the updates of {word}s {restored + 1}-{last} are undone and their "
                    f"batches skipped ({self.rollbacks} of {params.max_rollbacks})",
            suggestion="if it happens again, look at the data of those steps and lower the learning rate",
            evidence={"restored_step": restored, "skipped": [restored + 1, last], "rollbacks": self.rollbacks,
                      "because": finding.message}), name)
        return True

    def _remediated(self, finding: Finding, rule: str) -> None:
        """Keep, record and (with the rule's ``alert``) send the finding of a remediation done."""
        self.findings.append(finding)
        if self._record is not None:
            self._record.add_finding(finding)
        if self.is_main and "alert" in self.engine.actions.get(rule, ()) and self._alerts is not None:
            self._alerts.send(finding)

    def checkpoint_path(self, finding: Finding, sink: DecisionSink) -> str:
        """Where the checkpoint for ``finding`` goes: the run record's directory, else
        ``<sink.checkpoint_root>/tripwire_checkpoints``."""
        record = self.record_path
        folder = os.path.dirname(record) if record else os.path.join(sink.checkpoint_root, CHECKPOINT_FOLDER)
        return os.path.join(folder, checkpoint_name(finding, sink.checkpoint_suffix))

    def _save_checkpoint(self, finding: Finding, sink: DecisionSink) -> None:
        path = self.checkpoint_path(finding, sink)
        try:
            if self.is_main:
                os.makedirs(os.path.dirname(path), exist_ok=True)
            sink.save_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - a failed checkpoint must not stop training
            log.error("tripwire: %s: cannot save a checkpoint to %s: %s", finding.rule, path, exc)
            return
        if self.is_main:
            log.info("tripwire: %s: saved a checkpoint to %s", finding.rule, path)

    def _call(self, ref: str, finding: Finding) -> None:
        try:
            self._callables[ref](finding)
        except Exception as exc:  # noqa: BLE001 - a user's action must not break training
            log.error("tripwire: action %s failed for %s: %s", ref, finding.rule, exc)

    def summary(self, report_path: str | os.PathLike | None = None) -> str:
        """The end-of-run text: one line when nothing fired, else a table of findings; it names
        ``report_path`` when the HTML report was written, else the command that writes it."""
        from tripwire.report.summary import format_summary

        word = step_word(self.framework)
        return format_summary(self.findings, self.record_path, report_path, sampled_steps=len(self.sampled_steps),
                              repeats=self.repeats,
                              stopped_by=self.stopped_by, switched_off=self.guard.disabled, end=self.end,
                              step_word=word, schedule=self._schedule_line(word))

    def _schedule_line(self, word: str) -> str | None:
        """What sampling cost and how often it ran, once the budget measured it (a run too short to
        be measured, or a pinned interval, says nothing about it)."""
        if not self.schedule.budgeted or self.schedule.overhead is None:
            return None
        return self.schedule.summary(word)

    def close(self, timeout_s: float = 5.0, *, print_summary: bool | None = None,
              error: BaseException | None = None) -> None:
        """Record how the run ended (:attr:`end`), flush alerts (bounded wait) and the run record, and
        print the summary (main process; None: as :attr:`print_summary` says). A second call does nothing.

        Args:
            error: the exception leaving training, when the adapter sees one (the run ``crashed``,
                or a ``raise`` action stopped it).

        Example:
            >>> m = Monitor({"rules": {"nonfinite": {}}, "log_dir": None})
            >>> _ = m.process(Sample(step=30, stats={"loss_nonfinite": {None: 0.0}}))
            >>> m.close(error=ValueError("bad batch"), print_summary=False)
            >>> m.end.describe()
            'crashed: ValueError left training; last sample at step 30'
        """
        self._close(timeout_s, self.print_summary if print_summary is None else print_summary, error, exited=False)

    def _at_exit(self) -> None:
        """The process exits with the run open: an exception that went uncaught since the run
        opened (``sys.last_value``, set before exit handlers run) is a crash, anything else an
        exit without ``close``."""
        error = getattr(sys, "last_value", None)
        self._close(2.0, self.print_summary, None if error is self._seen_error else error, exited=True)

    def _close(self, timeout_s: float, print_summary: bool, error: BaseException | None, *, exited: bool) -> None:
        if self._opened and self.end is None:
            self.end = RunEnd.closing(stopped_by=self.stopped_by, error=error, exited=exited,
                                      last_step=max(self.sampled_steps, default=None))
        atexit.unregister(self._at_exit)
        if print_summary and self.is_main and self._opened:
            print(self.summary(), flush=True)
        if self._alerts is not None:
            self._alerts.close(timeout_s=timeout_s)
            self._alerts = None
        if self._record is not None:
            self._last_record_path = str(self._record.path)  # still reported after close
            self._record.close(end=self.end)
            self._record = None
        self._opened = False
        self._seen_error = None

    def restart(self, *, is_main: bool | None = None) -> None:
        """Begin another run with the same settings: fresh rule state, no findings, every part of
        the instrumentation on again; the current run, if open, is closed first (no summary).
        XGBoost starts each ``train``/``fit`` this way."""
        self.close(print_summary=False)
        self.engine = Engine(self.config, stop_on=self.engine.stop_on, framework=self.framework)
        self.guard = FailOpen(strict=self.engine.strict)
        self.findings, self.stopped_by, self.sampled_steps, self.end = [], None, set(), None
        self.schedule = self._new_schedule()
        self.repeats = {}
        self.lr_reductions, self.rollbacks, self.effects, self._last_loss = 0, 0, Effects(), None
        self._last_record_path = None
        if is_main is not None:
            self.is_main = is_main

    def __getstate__(self) -> dict[str, Any]:
        """A copy (pickle, deep copy: the sklearn API clones its callbacks, dask ships them to the
        workers) keeps the settings, the rule state and the findings, never the alert threads or
        the open run record."""
        state = self.__dict__.copy()
        state.update(_alerts=None, _record=None, _opened=False, _seen_error=None, _last_record_path=self.record_path)
        return state

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state: rule states and the findings so far."""
        return {
            "version": 1,
            "rules": self.engine.state_dict(),
            "findings": [f.to_dict() for f in self.findings],
            "repeats": [[rule, subject, n] for (rule, subject), n in self.repeats.items()],
            "stopped_by": None if self.stopped_by is None else self.stopped_by.to_dict(),
            "lr_reductions": self.lr_reductions,
            "rollbacks": self.rollbacks,
            "run_name": self.run_name or self._record_name(),  # a resumed run continues this record
            "schedule": self.schedule.state_dict(),
        }

    def _record_name(self) -> str | None:
        path = self.record_path
        return os.path.basename(os.path.dirname(path)) if path else None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; resuming continues patience counters and latches."""
        self.engine.load_state_dict(state.get("rules", {}))
        self.findings = [Finding.from_dict(f) for f in state.get("findings", [])]
        self.repeats = {(rule, subject): n for rule, subject, n in state.get("repeats", [])}
        self.lr_reductions = int(state.get("lr_reductions", 0))
        self.rollbacks = int(state.get("rollbacks", 0))
        stopped = state.get("stopped_by")
        self.stopped_by = None if stopped is None else Finding.from_dict(stopped)
        if state.get("run_name") and self.run_name is None:
            self.run_name = state["run_name"]
        self.schedule.load_state_dict(state.get("schedule", {}))


def _check_run_name(name: Any) -> str | None:
    """``name`` when it can name a directory of its own under ``log_dir`` (or is None)."""
    if name is None or (isinstance(name, str) and name.strip() and name not in (".", "..")
                        and not set(name) & {"/", "\\", "\0"}):
        return name
    raise ConfigError(f"run_name must be a directory name without path separators, e.g. 'lr-3e-4' "
                      f"(got {name!r})", source="<keyword arguments>", path="run_name")
