"""What a sample calls for (:class:`Decision`), and the sink an adapter carries it out through.

:meth:`Monitor.process <tripwire.monitor.Monitor.process>` turns a sample into a
:class:`Decision`; :meth:`Monitor.execute <tripwire.monitor.Monitor.execute>` applies it through
the adapter's :class:`DecisionSink`, the same way in every framework, in this order:

1. ``checkpoint``: one file per decision, named by :func:`checkpoint_name` after its first
   checkpoint finding, in the run record's directory (without a record, in
   ``<sink.checkpoint_root>/tripwire_checkpoints``). A save that fails is logged and training
   goes on.
2. ``reduce_lr`` (the torch adapters): the sink multiplies the learning rates by the rule's
   ``factor`` (:mod:`tripwire.remediation`), at most ``max_times`` in a run; what it did is a finding
   of its own (kind ``reduce_lr``), recorded and alerted like the one that called for it.
3. ``rollback`` (the torch adapters): the sink restores the newest training state kept before
   the steps the finding implicates (:mod:`tripwire.rollback`), at most ``max_rollbacks`` in a
   run; then the finding stops training instead. What it did is a finding of kind ``rollback``.
4. ``stop``: the sink ends training after the current step; ``Monitor.stopped_by`` keeps the
   first finding that stopped it.
5. ``raise``: :class:`~tripwire.errors.RuleTriggered` with the finding, after the checkpoint and
   the stop (an adapter that must clean up on the way out does so where the exception leaves
   its hook).

A sink is the framework glue and nothing else: a few lines that set the framework's stop flag
and save its model. Under data parallelism, where each rank evaluates its own statistics, the
adapter first makes every rank hold the same decision with :meth:`Monitor.agreed
<tripwire.monitor.Monitor.agreed>` (a rank whose own rules did not fire acts on a
:func:`stand_in` finding), then every rank executes it: a framework whose checkpoint is a
collective (Lightning) saves on every rank.

Example:
    >>> from tripwire import Monitor, Sample
    >>> class PrintingSink:                  # what an adapter writes: stop flag, model save
    ...     checkpoint_suffix, checkpoint_root = ".pt", "/tmp"
    ...     def stop(self, finding):
    ...         print("stop after step", finding.step)
    ...     def save_checkpoint(self, path):
    ...         print("save", path)
    >>> m = Monitor({"rules": {"nonfinite": {"actions": ["stop", "checkpoint"]}}}, log_dir=False)
    >>> decision = m.process(Sample(step=4, stats={"loss_nonfinite": {None: 1.0}}))
    >>> m.execute(decision, PrintingSink())
    save /tmp/tripwire_checkpoints/tripwire-nonfinite-step4.pt
    stop after step 4
    >>> m.close(print_summary=False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from tripwire.finding import Finding

#: the folder, under the sink's ``checkpoint_root``, for checkpoints of a run without a record
CHECKPOINT_FOLDER = "tripwire_checkpoints"


@dataclass
class Decision:
    """What the adapter must do after a sample (see :meth:`tripwire.Monitor.execute`).

    Attributes:
        findings: the new findings of this sample.
        stop: the finding whose ``stop`` action ends training, or None.
        checkpoint: the findings with the ``checkpoint`` action (one file is saved, named after the first).
        raise_: the finding whose ``raise`` action raises :class:`~tripwire.errors.RuleTriggered`, or None.
        reduce_lr: the finding whose ``reduce_lr`` action lowers the learning rate, or None.
        rollback: the finding whose ``rollback`` action restores a kept training state, or None.
        step: the sample's step; epoch: its epoch (for :func:`stand_in` findings).
    """

    findings: list[Finding] = field(default_factory=list)
    stop: Finding | None = None
    checkpoint: list[Finding] = field(default_factory=list)
    raise_: Finding | None = None
    reduce_lr: Finding | None = None
    rollback: Finding | None = None
    step: int = 0
    epoch: int | None = None


class DecisionSink(Protocol):
    """The framework side of a :class:`Decision`: what each adapter implements, in a few lines."""

    #: the file suffix of the framework's checkpoints, e.g. ``".ckpt"``, ``".keras"``, ``".ubj"``
    checkpoint_suffix: str
    #: where checkpoints go when the run writes no record (under :data:`CHECKPOINT_FOLDER`)
    checkpoint_root: str

    def stop(self, finding: Finding) -> None:
        """End training after the current step."""

    def save_checkpoint(self, path: str) -> None:
        """Save the training state to ``path`` (its folder exists on the main process)."""


class LrSink(DecisionSink, Protocol):
    """The sink of an adapter that carries out ``reduce_lr`` (its monitor is made with
    ``remediations`` naming it)."""

    def reduce_lr(self, factor: float, min_lr: float) -> tuple[float, float]:
        """Multiply the learning rates the optimizers use by ``factor`` (none below ``min_lr``); the
        first parameter group's rate before and after."""


class RollbackSink(DecisionSink, Protocol):
    """The sink of an adapter that carries out ``rollback``."""

    def rollback(self, step: int) -> tuple[int, int] | None:
        """Restore the newest training state kept before the steps implicated by a finding of
        ``step``; ``(restored step, last step trained)``, or None when no state is old enough."""


def checkpoint_name(finding: Finding, suffix: str) -> str:
    """The file name of the checkpoint saved for ``finding``: the same in every framework.

    Example:
        >>> f = stand_in(Decision(step=120), "checkpoint")
        >>> checkpoint_name(f, ".keras")
        'tripwire-tripwire-step120.keras'
    """
    return f"tripwire-{finding.rule}-step{finding.step}{suffix}"


def stand_in(decision: Decision, action: str) -> Finding:
    """The finding a rank acts on when another rank's rules fired with ``action`` and its own did
    not (a rank-local statistic): every rank then carries out the same decision."""
    return Finding(rule="tripwire", kind=action, step=decision.step, epoch=decision.epoch, severity="error",
                   subject=None, value=None, threshold=None, message=f"a rule with the {action} action fired on "
                   "another rank", suggestion="see the findings logged by the other ranks")
