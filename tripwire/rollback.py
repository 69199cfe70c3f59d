"""`StateKeeper`: the training states that the ``rollback`` action returns to, and the steps it skipped.

A keeper takes a state (whatever ``capture()`` returns: for torch, host copies of the model,
the optimizers, the schedulers and the RNG; see :mod:`tripwire.callbacks.torch.training_state`)
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
from typing import Any


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

    def skips(self, step: int) -> bool:
        """Whether a rollback undid the update of optimizer step ``step`` (a resumed run leaves it out again)."""
        return any(first <= step <= last for first, last in self.skipped)
