"""Rules a user might write and reference from YAML as ``type: user_rules:ClassName``.

Some are well behaved (they watch a statistic the training code reports with
``tripwire.observe``), some are broken on purpose: the suite checks that a broken user rule
is disabled with one logged error and never takes training down.

Example:
    >>> from tripwire.stats import Sample
    >>> rule = AboveLimit("signal", AboveLimit.Params(series="user/signal", limit=0.5))
    >>> [v.fired for v in rule.check(Sample(4, stats={"user/signal": {None: 1.0}}))]
    [True]
"""

from __future__ import annotations

from tripwire import Need, Rule, RuleParams
from tripwire.stats import Sample


class AboveLimit(Rule):
    """Fires while a run-wide series is above ``limit`` (clears below it)."""

    kind = "above_limit"
    summary = "a series is above a limit"

    class Params(RuleParams):
        series: str = "user/signal"
        limit: float = 0.5

    def needs(self) -> list[Need]:
        return [Need(self.params.series)]

    def check(self, sample: Sample) -> list:
        value = sample.scalar(self.params.series)
        if value is None:
            return []
        if value > self.params.limit:
            return [self.fire(None, value=value, threshold=self.params.limit,
                              message=f"{self.params.series} is {value:g} at step {sample.step}",
                              suggestion="look at the training code that reports it")]
        return [self.clear(None)]


class Flapping(Rule):
    """Fires on every other sample: a finding (and an alert) every second sampled step."""

    kind = "flapping"
    summary = "fires on every other sample"

    def needs(self) -> list[Need]:
        return [Need("loss")]

    def check(self, sample: Sample) -> list:
        if sample.scalar("loss") is None:
            return []
        self.state["n"] = self.state.get("n", 0) + 1
        if self.state["n"] % 2:
            return [self.fire(None, value=float(self.state["n"]), threshold=0.0,
                              message=f"flapping finding number {self.state['n']}",
                              suggestion="nothing: this rule exists to send alerts")]
        return [self.clear(None)]


class RaisesAfter(Rule):
    """Raises ``ZeroDivisionError`` from ``check`` once ``step >= after`` (on rank ``rank`` only,
    when set: under DDP it reads the ``user/rank`` series the training code reports)."""

    kind = "raises_after"
    summary = "raises inside check"
    frameworks = ("torch", "keras", "xgboost")

    class Params(RuleParams):
        after: int = 0
        rank: int | None = None

    def needs(self) -> list[Need]:
        return [Need("loss")] + ([Need("user/rank")] if self.params.rank is not None else [])

    def check(self, sample: Sample) -> list:
        here = self.params.rank is None or sample.scalar("user/rank") == self.params.rank
        if sample.step >= self.params.after and here:
            return [1 / 0]
        return []


class ReturnsNone(Rule):
    """Forgets to return its verdicts."""

    kind = "returns_none"
    summary = "check returns None"

    def needs(self) -> list[Need]:
        return [Need("loss")]

    def check(self, sample: Sample) -> list:
        return None  # type: ignore[return-value]


class UnserializableEvidence(Rule):
    """Fires with evidence JSON cannot hold (a set, an object)."""

    kind = "unserializable_evidence"
    summary = "evidence that is not JSON"

    def needs(self) -> list[Need]:
        return [Need("loss")]

    def check(self, sample: Sample) -> list:
        return [self.fire(None, value=1.0, threshold=0.0, message="fires with odd evidence",
                          suggestion="none", classes={1, 2}, model=object())]


class UnserializableState(Rule):
    """Keeps a set in its state: a checkpoint cannot hold it as plain JSON."""

    kind = "unserializable_state"
    summary = "state that is not JSON"

    def needs(self) -> list[Need]:
        return [Need("loss")]

    def check(self, sample: Sample) -> list:
        self.state.setdefault("seen", set()).add(sample.step)
        return []


class NeedsRaises(Rule):
    """Raises while declaring its statistics (at setup)."""

    kind = "needs_raises"
    summary = "needs() raises"

    def needs(self) -> list[Need]:
        raise RuntimeError("cannot work out what I need")

    def check(self, sample: Sample) -> list:
        return []


class UnknownStatistic(Rule):
    """Asks for a statistic no collector knows, next to one it does."""

    kind = "unknown_statistic"
    summary = "needs a statistic that does not exist"

    def needs(self) -> list[Need]:
        return [Need("no_such_statistic"), Need("loss")]

    def check(self, sample: Sample) -> list:
        return [] if sample.scalar("loss") is None else [self.clear(None)]
