"""The rule engine: builds the configured rules, feeds them samples, latches findings.

Framework-free. Every rank of a distributed run holds one engine fed with the same reduced
statistics, so every rank reaches the same findings.

Example:
    >>> from tripwire.config import Config
    >>> from tripwire.stats import Sample
    >>> engine = Engine(Config.load({"rules": {"nonfinite": {}}}), framework="torch")
    >>> sorted(n.key for n in engine.needs())
    ['grad_nonfinite', 'loss_nonfinite', 'weight_nonfinite']
    >>> [f.rule for f in engine.evaluate(Sample(step=3, stats={"loss_nonfinite": {None: 1.0}}))]
    ['nonfinite']
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

from tripwire.config import Config, RuleSpec
from tripwire.errors import ConfigError, RuleError
from tripwire.finding import Finding
from tripwire.registry import builtin_rules, rule_class, suggest
from tripwire.rule import Rule, Verdict
from tripwire.stats import CALLBACKS, CATALOGUE, USER_PREFIX, Need, Sample, collects, is_known, required

log = logging.getLogger("tripwire")

_SHOWN = 5  # subjects named in a merged finding


class Engine:
    """Holds rule instances, their actions, latches and errors.

    Args:
        config: the validated configuration.
        stop_on: rule names that also get the ``stop`` action.
        framework: ``torch``, ``keras`` or ``xgboost``; rules that cannot get their statistics
            there are left out, and when the user configured them explicitly the reason is kept
            in :attr:`not_run` (:class:`~tripwire.monitor.Monitor` logs it once per run).
        strict: re-raise a rule's internal error instead of disabling the rule.

    Raises:
        ConfigError: a rule needs a statistic no collector provides (neither in
            :data:`~tripwire.stats.CATALOGUE` nor a ``user/<name>`` series), or ``needs()``
            returns something other than :class:`~tripwire.stats.Need` objects.
    """

    def __init__(self, config: Config, *, stop_on: Iterable[str] = (), framework: str | None = None,
                 strict: bool | None = None) -> None:
        self.config = config
        self.strict = config.strict if strict is None else strict
        self.rules: dict[str, Rule] = {}
        self.actions: dict[str, tuple[str, ...]] = {}
        self.severities: dict[str, str] = {}
        self.disabled: dict[str, str] = {}
        self.not_run: dict[str, str] = {}  # explicitly configured rules left out: why, in one line
        self.rearm_after: dict[str, int] = {}
        #: per rule, the subjects that fired and have not re-armed: how many clear verdicts in a row since
        self._latched: dict[str, dict[str | None, int]] = {}
        self._reads: dict[str, set[str]] = {}  # the statistics each rule reads
        self._judged: set[str] = set()  # rules that have returned a verdict
        specs = config.rule_specs()
        if isinstance(stop_on, str):  # stop_on="dead_relu" means that one rule, not its letters
            stop_on = [stop_on]
        try:
            stop_on = list(() if stop_on is None else stop_on)
        except TypeError:
            raise ConfigError(f"stop_on must be a list of rule names (got {stop_on!r})", path="stop_on") from None
        unknown = [n if isinstance(n, str) else repr(n) for n in stop_on if not isinstance(n, str) or n not in specs]
        if unknown:
            raise ConfigError(f"stop_on names rules that are not enabled: {', '.join(unknown)}; "
                              f"enabled: {', '.join(specs)}", path="stop_on")
        self.stop_on: tuple[str, ...] = tuple(stop_on)
        configured = set(specs) if config.rules is not None else set()
        if config.shadow:  # every other built-in rule too, under its own name
            kinds = {spec.type for spec in specs.values()}
            specs = {**specs, **{k: RuleSpec(type=k) for k in builtin_rules() if k not in kinds and k not in specs}}
        for name, spec in specs.items():
            cls = rule_class(spec.type)
            rule = cls(name, cls.Params.model_validate(spec.params))
            rule.framework = framework
            declared = self._declared(rule, spec.type)
            why = self._cannot_run(rule, spec.type, declared, framework)
            if why:
                if name in configured:  # the default set leaves other frameworks' rules out quietly
                    self.not_run[name] = why
                continue
            actions = list(spec.actions if spec.actions is not None else cls.default_actions)
            if name in stop_on and "stop" not in actions:
                actions.append("stop")
            if config.shadow:
                actions = ["alert"]  # the monitor sends shadow alerts to the log channel only
            self.rules[name] = rule
            self.actions[name] = tuple(actions)
            self.severities[name] = spec.severity or cls.severity
            self.rearm_after[name] = spec.rearm_after or cls.rearm_after
            self._latched[name] = {}
            self._reads[name] = {n.stat for n in declared or ()}

    def _declared(self, rule: Rule, kind: str) -> list[Need] | None:
        """The rule's needs, checked against the statistics collectors provide; None when
        ``needs()`` raises (the rule is then disabled, with its error logged, by :meth:`needs`)."""
        try:
            needs = list(rule.needs())
        except Exception:  # noqa: BLE001 - reported where the needs are read
            return None
        where = {"source": self.config.source, "path": f"rules.{rule.name}"}
        for need in needs:
            if not isinstance(need, Need):
                raise ConfigError(f"rule '{rule.name}' ({kind}): needs() must return tripwire.Need objects, "
                                  f"got {need!r}; e.g. Need('loss')", **where)
            if not is_known(need.stat):
                raise ConfigError(f"rule '{rule.name}' ({kind}) needs the statistic '{need.stat}', which no "
                                  f"collector provides{suggest(need.stat, CATALOGUE)}; valid: "
                                  f"{', '.join(sorted(CATALOGUE))}, or '{USER_PREFIX}<name>' for a value the "
                                  "training code reports with tripwire.observe(name, value)", **where)
        return needs

    @staticmethod
    def _cannot_run(rule: Rule, kind: str, needs: list[Need] | None, framework: str | None) -> str:
        """Why ``rule`` cannot run under ``framework`` (one line), or '' when it can."""
        if framework is None:
            return ""
        callback = CALLBACKS.get(framework, framework)
        missing = sorted({n.stat for n in needs or () if required(n) and not collects(framework, n.stat)})
        if missing:
            return f"rule {rule.name} needs {', '.join(missing)}, which {callback} does not collect; it will not run"
        if framework not in rule.frameworks:
            return (f"rule {rule.name} ({kind}) is for {' and '.join(rule.frameworks)} training, not {callback}; "
                    "it will not run")
        return ""

    def needs(self) -> set[Need]:
        """Union of the statistics the active rules need."""
        out: set[Need] = set()
        for name, rule in list(self.rules.items()):
            if name in self.disabled:
                continue
            try:
                out.update(rule.needs())
            except Exception as exc:  # noqa: BLE001 - a broken rule must not break training
                self._fail(name, exc)
        return out

    def waiting(self, stats: Iterable[str]) -> bool:
        """Whether an active rule that reads one of ``stats`` has not judged yet (returned no
        verdict so far: a data rule before ``min_samples``). A collector that hands some statistics
        to the host less often than every flush (the data totals of wide inputs) hands them at every
        flush while this holds, so such a rule judges at the first sample that holds enough data.

        Example:
            >>> from tripwire.config import Config
            >>> engine = Engine(Config.load({"rules": {"class_imbalance": {"min_samples": 10}}}))
            >>> engine.waiting({"label_count"}), engine.waiting({"loss"})
            (True, False)
            >>> _ = engine.evaluate(Sample(step=0, stats={"label_count": {"0": 8.0, "1": 4.0}}))
            >>> engine.waiting({"label_count"})
            False
        """
        stats = set(stats)
        return any(name not in self._judged and name not in self.disabled and self._reads[name] & stats
                   for name in self.rules)

    def evaluate(self, sample: Sample) -> list[Finding]:
        """Run every active rule on ``sample``; return the new findings in rule order."""
        return self.judge(sample)[0]

    def judge(self, sample: Sample) -> tuple[list[Finding], list[Finding]]:
        """Run every active rule on ``sample``: ``(new findings, repeats)``, each in rule order.

        A subject that fired stays latched until the rule has cleared it ``rearm_after`` verdicts in
        a row; firing again before that is a *repeat* of its finding: kept in the run record and
        counted in the summary, but neither alerted nor acted on.

        Example:
            >>> from tripwire.config import Config
            >>> engine = Engine(Config.load({"rules": {"nonfinite": {"rearm_after": 2}}}))
            >>> flag = lambda step, v: Sample(step=step, stats={"loss_nonfinite": {None: v}})
            >>> [(len(new), len(again)) for new, again in map(engine.judge, [flag(0, 1.0), flag(1, 0.0),
            ...  flag(2, 1.0), flag(3, 0.0), flag(4, 0.0), flag(5, 1.0)])]
            [(1, 0), (0, 0), (0, 1), (0, 0), (0, 0), (1, 0)]
        """
        findings: list[Finding] = []
        repeats: list[Finding] = []
        for name, rule in self.rules.items():
            if name in self.disabled:
                continue
            try:  # a user's rule may also return junk or evidence that JSON cannot hold
                verdicts = rule.check(sample)
                if verdicts:
                    self._judged.add(name)
                latched, rearm_after = self._latched[name], self.rearm_after[name]
                new: list[Verdict] = []
                again: list[Verdict] = []
                for v in verdicts:
                    clears = latched.get(v.subject)
                    if not v.fired:
                        if clears is not None:
                            if clears + 1 >= rearm_after:
                                del latched[v.subject]
                            else:
                                latched[v.subject] = clears + 1
                    elif clears is None:
                        latched[v.subject] = 0
                        new.append(v)
                    else:
                        if clears:  # fired, cleared, fires again: the same fault flapping
                            again.append(v)
                        latched[v.subject] = 0
                for chosen, out in ((new, findings), (again, repeats)):
                    if chosen:
                        finding = self._finding(name, rule, sample, chosen)
                        finding.to_json()  # the record and checkpoints store it as JSON
                        out.append(finding)
            except Exception as exc:  # noqa: BLE001 - isolate rule failures
                self._fail(name, exc)
        return findings, repeats

    def _finding(self, name: str, rule: Rule, sample: Sample, verdicts: list[Verdict]) -> Finding:
        """One finding per rule and sample: several layers that fired together are named in one."""
        first = verdicts[0]
        subject, message, evidence = first.subject, first.message, dict(first.evidence)
        if len(verdicts) > 1:
            names = [str(v.subject) for v in verdicts]
            shown = ", ".join(names[:_SHOWN]) + (f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else "")
            subject = shown
            message = f"{first.message}; also {len(names) - 1} more: {', '.join(names[1:_SHOWN])}" + (
                " ..." if len(names) > _SHOWN else "")
            evidence["subjects"] = {str(v.subject): v.value for v in verdicts}
        return Finding(rule=name, kind=rule.kind, step=sample.step, epoch=sample.epoch,
                       severity=first.severity or self.severities[name], subject=subject, value=first.value,
                       threshold=first.threshold, message=message, suggestion=first.suggestion,
                       evidence=evidence)

    def _fail(self, name: str, exc: Exception) -> None:
        if self.strict:
            raise RuleError(f"rule {name!r} failed: {type(exc).__name__}: {exc}") from exc
        self.disabled[name] = f"{type(exc).__name__}: {exc}"
        log.error("tripwire: rule %s failed and is disabled for the rest of the run: %s",
                  name, self.disabled[name], exc_info=exc)

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state of every rule: its own state, its latches, whether it is disabled."""
        out = {}
        for name, rule in self.rules.items():
            try:
                state = json.loads(json.dumps(rule.state))
            except Exception as exc:  # noqa: BLE001 - a user rule's state must not break the checkpoint
                self._fail(name, exc)
                state = rule.state = {}  # disabled: later checkpoints need not log it again
            out[name] = {
                "state": state,
                "latched": sorted(self._latched[name], key=lambda s: (s is not None, s or "")),
                "clear_for": [[s, n] for s, n in self._latched[name].items() if n],  # re-arming subjects
                "disabled": self.disabled.get(name),
            }
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` produced; rules not in ``state`` keep a fresh state."""
        for name, entry in state.items():
            if name not in self.rules:
                continue
            self.rules[name].state = json.loads(json.dumps(entry.get("state", {})))
            self._latched[name] = dict.fromkeys(entry.get("latched", []), 0)
            self._latched[name].update((s, n) for s, n in entry.get("clear_for", []) if s in self._latched[name])
            if entry.get("disabled"):
                self.disabled[name] = entry["disabled"]
