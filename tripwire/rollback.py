"""`StateKeeper`: the training states that the ``rollback`` action returns to, and the steps it skipped.

A keeper takes a state (whatever ``capture()`` returns: for torch, host copies of the model, the
optimizers and an AMP scaler, see :mod:`tripwire.callbacks.torch.training_state`; for Keras, the
weights and optimizer variables, see :mod:`tripwire.callbacks.keras.training_state`)
at the start of training and after every ``every``-th optimizer step, and keeps the last ``keep``.
A rollback restores the newest state taken *before* the first step a finding implicates, drops
the states after it (they hold the damage), and notes the steps whose updates are thereby undone:
training goes on with the next batches, so the batches of those steps are skipped.

The skipped steps are kept (:attr:`StateKeeper.skipped`) for a run resumed from a checkpoint
taken before the rollback: replaying those steps, its adapter leaves their updates out again
(:meth:`StateKeeper.skips`), and the resumed run follows the one that rolled back.

Example:
    >>> states = {"w": 0}
    >>> keeper = StateKeeper(every=10, keep=2, capture=lambda: dict(states), restore=states.update)
    >>> keeper.start(0)
    >>> for step in range(1, 36):
    ...     states["w"] = step          # an optimizer step
    ...     keeper.after_step(step)
    >>> [s for s, _ in keeper.states]
    [20, 30]
    >>> keeper.roll_back(first_implicated=31, now=35), states["w"]
    (30, 30)
    >>> keeper.skipped, keeper.skips(33), keeper.skips(36)
    ([(31, 35)], True, False)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: the name of the part that keeps and restores the states, in warnings and the end-of-run summary
#: (a failure switches the action off and training goes on; see :class:`tripwire.failopen.FailOpen`)
PART = "rollback action (kept training states)"


class StateKeeper:
    """The last ``keep`` training states, one every ``every`` optimizer steps (see the module docstring).

    Args:
        every: optimizer steps between two kept states.
        keep: states kept at most.
        capture: ``() -> state``, a copy of the training state that later training does not change.
        restore: ``state -> None``, puts a captured state back.
    """

    def __init__(self, every: int, keep: int, capture: Callable[[], Any], restore: Callable[[Any], None]) -> None:
        self.every, self.keep = every, keep
        self._capture, self._restore = capture, restore
        #: ``(step, state)`` pairs, oldest first: the state after that optimizer step's update
        self.states: list[tuple[int, Any]] = []
        #: ``(first, last)`` optimizer steps whose updates a rollback undid, in order
        self.skipped: list[tuple[int, int]] = []
        #: the steps of the last two training samples decided (:meth:`note_sample`)
        self.samples: list[int] = []

    def start(self, step: int) -> None:
        """Training starts (or resumes) at ``step``: keep its state, the one to return to before any other."""
        self._take(step)

    def after_step(self, step: int) -> None:
        """Optimizer step ``step`` applied its update: keep the state when ``step`` is a multiple of ``every``."""
        if step % self.every == 0 and not (self.states and self.states[-1][0] == step):
            self._take(step)

    def _take(self, step: int) -> None:
        self.states.append((step, self._capture()))
        del self.states[:-self.keep]

    def roll_back(self, first_implicated: int, now: int) -> int | None:
        """Restore the newest state kept before step ``first_implicated``; ``now``: the last step
        trained. Returns the restored state's step, or None when no state is that old (nothing is
        changed then)."""
        older = [i for i, (step, _) in enumerate(self.states) if step < first_implicated]
        if not older:
            return None
        index = older[-1]
        step, state = self.states[index]
        self._restore(state)
        del self.states[index + 1:]
        if now > step:
            self.skipped.append((step + 1, now))
        return step

    def note_sample(self, step: int) -> None:
        """A training sample of ``step`` was decided: a later finding implicates only the steps after it."""
        self.samples = [*self.samples[-1:], step]

    def roll_back_for(self, finding_step: int, now: int) -> tuple[int, int] | None:
        """Roll back for a finding of the sample at ``finding_step``, which implicates the steps since
        the previous sample (a spike between two samples is seen at the second); ``now``: the last
        step trained. ``(restored step, now)``, or None when no state is old enough."""
        before = [s for s in self.samples if s < finding_step]
        restored = self.roll_back(before[-1] + 1 if before else finding_step, now)
        return None if restored is None else (restored, now)

    def skips(self, step: int) -> bool:
        """Whether a rollback undid the update of optimizer step ``step`` (a resumed run leaves it out again)."""
        return any(first <= step <= last for first, last in self.skipped)


def keeper_for(monitor: Any, capture: Callable[[], Any], restore: Callable[[Any], None],
               saved: list[Any] = ()) -> StateKeeper | None:
    """The keeper of a run whose rules have the ``rollback`` action (None otherwise), with the
    ``every`` and ``keep`` of the first such rule, and the steps undone so far in this run: those
    in ``saved`` (an adapter's checkpointed state) and those in its record (a resumed run)."""
    name = monitor.remediating_rule("rollback")
    if name is None:
        return None
    params = monitor.config.rule_specs()[name].remediation("rollback")
    keeper = StateKeeper(params.every, params.keep, capture, restore)
    for first, last in [*saved, *recorded_skips(monitor)]:
        if (int(first), int(last)) not in keeper.skipped:
            keeper.skipped.append((int(first), int(last)))
    return keeper


def recorded_skips(monitor: Any) -> list[tuple[int, int]]:
    """The steps that rollbacks undid in earlier parts of this run, from its record (a run resumed
    into it). Every rank reads the file, so that every rank leaves the same updates out: the
    record's directory must be shared (one machine, or a shared file system); elsewhere only a
    checkpoint taken after the rollback carries them."""
    from tripwire.record.reader import Run

    if not monitor.config.log_dir or not monitor.run_name:
        return []
    try:
        run = Run(Path(monitor.config.log_dir) / monitor.run_name)
    except FileNotFoundError:  # a fresh run: nothing recorded yet
        return []
    try:
        return [tuple(f.evidence["skipped"]) for f in run.findings if f.kind == "rollback"]
    finally:
        run.close()
