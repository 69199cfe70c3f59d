"""Remediation actions: what repairs training in place, their parameters, and which rules drive them.

A remediation is written in a rule's ``actions`` like any action, by name or, with parameters, as
a one-key mapping (``actions: [alert, {reduce_lr: {factor: 0.3}}]``). A rule carries one only
where its class lists it (:attr:`tripwire.Rule.remediations`), and a callback only where it can
carry it out (the torch adapters and Keras all three; XGBoost refuses them when it is made):

- ``skip_step``: the update of a step judged a spike is left out (``loss_spike``: it needs a
  verdict at every step, on the device, before the update);
- ``reduce_lr``: every parameter group's learning rate is multiplied by ``factor`` (never below
  ``min_lr``), at most ``max_times`` in a run; a scheduler's value is scaled as the optimizer
  uses it, so the schedule goes on from its own values (Keras: a float rate, assigned in place).
- ``rollback``: the adapter keeps the training state (model and optimizer state; the step counter,
  the schedules and the random streams follow the data, which moves on) every
  ``every`` steps, the last ``keep`` of them; a finding restores the newest one kept before the
  steps it implicates, and training goes on with the next batches, so the batches in between are
  skipped (:mod:`tripwire.rollback`). At most ``max_rollbacks`` in a run, then the finding stops it.

Example:
    >>> REMEDIATIONS
    ('skip_step', 'reduce_lr', 'rollback')
    >>> ReduceLr(factor=0.3)
    ReduceLr(factor=0.3, min_lr=0.0, max_times=3)
    >>> ReduceLr(factor=2)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for ReduceLr
    factor
      Input should be less than 1 ...
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tripwire.finding import Finding


class SkipStep(BaseModel):
    """``skip_step`` takes no parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReduceLr(BaseModel):
    """Parameters of ``reduce_lr``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    factor: float = Field(0.5, gt=0, lt=1, description="multiplies every parameter group's learning rate")
    min_lr: float = Field(0.0, ge=0, description="a learning rate is never lowered below this")
    max_times: int = Field(3, ge=1, description="reductions in a run at most (over every rule)")


class Rollback(BaseModel):
    """Parameters of ``rollback``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    every: int = Field(100, ge=1, description="optimizer steps between two kept training states")
    keep: int = Field(2, ge=1, le=100, description="training states kept (in host memory)")
    max_rollbacks: int = Field(3, ge=1, description="rollbacks in a run at most (over every rule); the next "
                                                    "finding stops training")


#: the remediation actions and their parameter models
PARAMETERS: dict[str, type[BaseModel]] = {"skip_step": SkipStep, "reduce_lr": ReduceLr, "rollback": Rollback}
REMEDIATIONS = tuple(PARAMETERS)
#: why a rule type that does not list a remediation cannot drive it
WHY_NOT = {"skip_step": "it needs a verdict at every step, before the update",
           "reduce_lr": "its findings do not say that the learning rate is too high",
           "rollback": "its findings do not say that the last steps damaged the model"}


class Effects:
    """What followed each remediation: at the next sample with a training loss, an info finding
    (kind ``<action>_effect``) compares that loss with the loss of the sample before the one that
    called for the remediation. It is made by the monitor, not by a rule: it carries no action.

    Example:
        >>> from tripwire.finding import Finding
        >>> spike = Finding(rule="loss_spike", kind="loss_spike", step=150, epoch=None, severity="warning",
        ...                 subject="loss", value=14.5, threshold=6.0, message="loss spike at step 150",
        ...                 suggestion="", evidence={})
        >>> effects = Effects()
        >>> effects.note(spike, "skip_step", loss_before=0.31)
        >>> effects.due(150, loss=0.9), [f.message for f in effects.due(160, loss=0.30)]
        ([], ['after skip_step at step 150 (loss_spike): training loss 0.3 since then, 0.31 before'])
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Finding, str, float | None]] = []

    def note(self, finding: Finding, action: str, loss_before: float | None) -> None:
        """``action`` was done for ``finding``; ``loss_before``: the training loss of the sample before."""
        self._pending.append((finding, action, loss_before))

    def due(self, step: int, loss: float | None) -> list[Finding]:
        """The effect findings of the remediations done at samples before ``step``, given the
        training loss of the sample at ``step`` (none while it is unknown)."""
        if loss is None:
            return []
        due = [p for p in self._pending if p[0].step < step]
        self._pending = [p for p in self._pending if p[0].step >= step]
        return [self._effect(finding, action, before, step, loss) for finding, action, before in due]

    @staticmethod
    def _effect(finding: Finding, action: str, before: float | None, step: int, loss: float) -> Finding:
        was = f", {before:.3g} before" if before is not None else ""
        evidence: dict[str, Any] = {"action": action, "at_step": finding.step, "loss_before": before,
                                    "loss_after": loss}
        return replace(finding, kind=f"{action}_effect", step=step, severity="info", subject=None, value=loss,
                       threshold=None, evidence=evidence,
                       message=f"after {action} at step {finding.step} ({finding.rule}): training loss {loss:.3g} "
                               f"since then{was}",
                       suggestion="a loss back at its level before: the run recovered; still higher: lower the "
                                  "learning rate, or look at the data of that step")
