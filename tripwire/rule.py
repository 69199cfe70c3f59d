"""The rule contract: a framework-free decision over scalar statistics.

A rule declares its parameters (a pydantic model, so YAML is validated with located errors and
``tripwire rules`` can list defaults), the statistics it needs, and a ``check`` that turns one
:class:`~tripwire.stats.Sample` into verdicts. State lives in ``self.state``, a dict of plain
Python values, so it survives checkpoints loaded with ``weights_only=True``.

Verdicts, not findings: a rule says for each subject it evaluated whether the condition holds
(:meth:`Rule.fire`) or not (:meth:`Rule.clear`). The engine turns the first ``fire`` for a
(rule, subject) into a :class:`~tripwire.finding.Finding` and re-arms only after ``rearm_after``
``clear`` verdicts in a row, so a persistent fault is reported once and a flapping one (fires,
clears, fires again a few samples later) is reported once per episode; a ``fire`` while the
subject re-arms is recorded as a repeat of that finding, not acted on. A rule with patience
clears while it is still counting (the subject was judged and is not at fault yet) and returns
no verdict for a subject only when the sample does not let it judge that subject; see
:mod:`tripwire.rules._streak`.

Example:
    >>> from tripwire.stats import Sample
    >>> class LossAbove(Rule):
    ...     kind = "loss_above"
    ...     summary = "the loss is above a limit"
    ...     class Params(RuleParams):
    ...         limit: float = 10.0
    ...     def needs(self):
    ...         return [Need("loss")]
    ...     def check(self, sample):
    ...         loss = sample.scalar("loss")
    ...         if loss is None:
    ...             return []
    ...         if loss > self.params.limit:
    ...             return [self.fire(None, value=loss, threshold=self.params.limit,
    ...                               message=f"loss {loss:.3g} > {self.params.limit}",
    ...                               suggestion="lower the learning rate")]
    ...         return [self.clear(None)]
    >>> rule = LossAbove("loss_above", LossAbove.Params(limit=1.0))
    >>> rule.check(Sample(step=5, stats={"loss": {None: 3.0}}))[0].fired
    True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from tripwire.stats import FRAMEWORKS, Need, Sample, frameworks_for
from tripwire.wording import step_word

__all__ = ["Limit", "Need", "Rule", "RuleParams", "SupportedFrameworks", "Verdict"]


class RuleParams(BaseModel):
    """Base of every rule's parameter model: unknown keys are errors, values are validated.

    ``renamed`` maps the former names of parameters to their current names. A former name keeps
    working: a config file logs a located warning where it uses one (see :mod:`tripwire.config`),
    Python code gets a ``DeprecationWarning``; giving a parameter under both names is an error.

    Example:
        >>> import warnings
        >>> class Params(RuleParams):
        ...     renamed: ClassVar[dict[str, str]] = {"num_steps": "patience"}
        ...     patience: int = 3
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     Params(num_steps=5)
        Params(patience=5)
        >>> str(caught[0].message)
        "'num_steps' is deprecated: use 'patience' instead"
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _accept_former_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.renamed.keys() & data.keys():
            return data
        data = dict(data)
        for former, current in cls.renamed.items():
            if former in data:
                if current in data:
                    raise ValueError(both_names(former, current))
                warnings.warn(deprecated_name(former, current), DeprecationWarning, stacklevel=2)
                data[current] = data.pop(former)
        return data


def deprecated_name(former: str, current: str) -> str:
    """What a config or a call that uses a parameter's former name is told."""
    return f"'{former}' is deprecated: use '{current}' instead"


def both_names(former: str, current: str) -> str:
    """What a config or a call that gives a parameter under its former and its current name is told."""
    return f"'{former}' is the former name of '{current}': give only '{current}'"


@dataclass(frozen=True)
class Verdict:
    """A rule's word on one subject at one sample: the condition holds (``fired``) or not."""

    subject: str | None
    fired: bool
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    suggestion: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str | None = None


@dataclass(frozen=True)
class Limit:
    """A parameter of a rule that is a threshold, for ``tripwire calibrate``.

    ``side="upper"``: the rule fires when its statistic goes above the parameter (a larger value
    is more lenient); ``side="lower"``: it fires when the statistic goes below it (a smaller
    value is more lenient). ``scale`` is how the value is searched and how margins are told:
    ``"log"`` (margins as factors), ``"linear"`` (differences) or ``"int"``. ``off`` is the
    most lenient value, one at which this test never fires, so the rule's other limits can be
    calibrated alone (default: ``inf`` for an upper limit, ``0`` for a lower one).

    Example:
        >>> Limit("threshold", "lower", "log").off
        0.0
        >>> Limit("threshold_layer", "upper", "linear").off
        inf
    """

    param: str
    side: str
    scale: str = "log"
    off: float | None = field(default=None)

    def __post_init__(self) -> None:
        if self.side not in ("upper", "lower") or self.scale not in ("log", "linear", "int"):
            raise ValueError(f"Limit({self.param!r}): side must be upper/lower and scale log/linear/int")
        if self.off is None:
            object.__setattr__(self, "off", float("inf") if self.side == "upper" else 0.0)


class SupportedFrameworks:
    """``Rule.frameworks`` where a rule does not set it: the frameworks whose callback collects
    what the rule needs (:func:`tripwire.stats.frameworks_for`). Read on a class, from ``needs()``
    under the default parameters; on a rule, from its own. A rule whose needs cannot be read that
    way (``needs()`` raises, a parameter has no default) is left to the engine, which reports it.

    Example:
        >>> class LossOnly(Rule):
        ...     def needs(self):
        ...         return [Need("loss")]
        >>> LossOnly.frameworks
        ('torch', 'keras', 'xgboost')
    """

    def __get__(self, rule: Rule | None, cls: type[Rule]) -> tuple[str, ...]:
        try:
            if rule is None:
                rule = cls(cls.kind or cls.__name__)
            return frameworks_for(rule.needs())
        except Exception:  # noqa: BLE001 - the engine disables such a rule with its error
            return FRAMEWORKS


class Rule:
    """Base class of every rule. Subclasses set ``kind``, ``summary``, ``Params``, and implement
    :meth:`needs` and :meth:`check`.

    Class attributes:
        kind: registry name, used as ``type:`` in YAML.
        summary: one line for ``tripwire rules``.
        Params: pydantic model of the parameters with defaults.
        severity: default severity of its findings.
        default_actions: actions when the config gives none.
        in_default_set: whether ``config=None`` enables it.
        frameworks: where it can get its statistics (``torch``, ``keras``, ``xgboost``): derived
            from :meth:`needs` (see :class:`SupportedFrameworks`); a rule may set it to run in
            fewer places.
        limits: the parameters that are thresholds (see :class:`Limit`), for ``tripwire calibrate``.
        rearm_after: how many verdicts in a row a subject must be clear (samples; validations for
            the validation rules) before it may fire again; ``rearm_after:`` in a rule's YAML
            overrides it.
        remediations: the remediation actions (:mod:`tripwire.remediation`) its findings can drive:
            ``skip_step`` needs a verdict at every step, on the device, before the update;
            ``reduce_lr`` a finding that means the learning rate is too high.

    Instance attribute:
        framework: the framework whose training the rule judges now (``torch``, ``keras`` or
            ``xgboost``), set by the engine; None where unknown. Messages name its steps and
            suggestions speak its terms (:mod:`tripwire.wording`): XGBoost findings say "round"
            and suggest tree parameters.
    """

    kind: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Params: ClassVar[type[RuleParams]] = RuleParams
    severity: ClassVar[str] = "warning"
    default_actions: ClassVar[tuple[str, ...]] = ("alert",)
    in_default_set: ClassVar[bool] = True
    frameworks: ClassVar[tuple[str, ...]] = SupportedFrameworks()  # type: ignore[assignment]
    limits: ClassVar[tuple[Limit, ...]] = ()
    rearm_after: ClassVar[int] = 10
    remediations: ClassVar[tuple[str, ...]] = ()
    framework: str | None = None

    def __init__(self, name: str, params: RuleParams | None = None) -> None:
        self.name = name
        self.params = params if params is not None else self.Params()
        self.state: dict[str, Any] = self.initial_state()

    def initial_state(self) -> dict[str, Any]:
        """Fresh state (plain Python values only)."""
        return {}

    def needs(self) -> list[Need]:
        """Statistics this rule reads, as configured."""
        raise NotImplementedError

    def check(self, sample: Sample) -> list[Verdict]:
        """Verdicts for the subjects this sample lets the rule evaluate."""
        raise NotImplementedError

    # helpers for subclasses
    @cached_property
    def _series(self) -> str:
        """The series key of the rule's first need, made once (its parameters are frozen): a rule
        that reads its series at every sample need not build its needs at every sample."""
        return self.needs()[0].key

    @property
    def step_word(self) -> str:
        """What one step is called in this rule's messages: ``round`` under XGBoost, else ``step``."""
        return step_word(self.framework)

    def fire(self, subject: str | None, *, value: float | None, threshold: float | None,
             message: str, suggestion: str, severity: str | None = None, **evidence: Any) -> Verdict:
        """Verdict: the condition holds for ``subject``."""
        return Verdict(subject, True, None if value is None else float(value),
                       None if threshold is None else float(threshold), message, suggestion,
                       evidence, severity)

    @staticmethod
    def clear(subject: str | None) -> Verdict:
        """Verdict: the condition does not hold for ``subject`` (re-arms it). One shared verdict per
        subject: a clear holds nothing but its subject, and the per-layer rules give one for every
        layer at every sample."""
        return _clear(subject)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.model_dump().items())
        return f"{type(self).__name__}(name={self.name!r}, {args})"


@lru_cache(maxsize=16384)
def _clear(subject: str | None) -> Verdict:
    return Verdict(subject, False)
