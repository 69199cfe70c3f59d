"""Remediation actions: what repairs training in place, their parameters, and which rules drive them.

A remediation is written in a rule's ``actions`` like any action, by name or, with parameters, as
a one-key mapping (``actions: [alert, {reduce_lr: {factor: 0.3}}]``). A rule carries one only
where its class lists it (:attr:`tripwire.Rule.remediations`), and a callback only where it can
carry it out (the torch adapters; others refuse it when they are made):

- ``skip_step``: the update of a step judged a spike is left out (``loss_spike``: it needs a
  verdict at every step, on the device, before the update);
- ``reduce_lr``: every parameter group's learning rate is multiplied by ``factor`` (never below
  ``min_lr``), at most ``max_times`` in a run; a scheduler's value is scaled as the optimizer
  uses it, so the schedule goes on from its own values.

Example:
    >>> REMEDIATIONS
    ('skip_step', 'reduce_lr')
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

from pydantic import BaseModel, ConfigDict, Field


class SkipStep(BaseModel):
    """``skip_step`` takes no parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReduceLr(BaseModel):
    """Parameters of ``reduce_lr``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    factor: float = Field(0.5, gt=0, lt=1, description="multiplies every parameter group's learning rate")
    min_lr: float = Field(0.0, ge=0, description="a learning rate is never lowered below this")
    max_times: int = Field(3, ge=1, description="reductions in a run at most (over every rule)")


#: the remediation actions and their parameter models
PARAMETERS: dict[str, type[BaseModel]] = {"skip_step": SkipStep, "reduce_lr": ReduceLr}
REMEDIATIONS = tuple(PARAMETERS)
#: why a rule type that does not list a remediation cannot drive it
WHY_NOT = {"skip_step": "it needs a verdict at every step, before the update",
           "reduce_lr": "its findings do not say that the learning rate is too high"}
