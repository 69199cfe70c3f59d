"""Statistics variables inside the stateless, jitted ``fit`` of the Keras JAX backend.

On JAX, ``fit`` jits ``train_step(state, data)`` and, between steps, keeps every value in that
state instead of in the variables (``keras/src/backend/jax/trainer.py``). Three things follow:

- A variable the step writes must be part of the state. :meth:`JaxState.attach` tracks the
  statistics written in the optimizer's ``apply`` as optimizer variables, and those written in
  the forward pass or in ``compute_loss`` as model state beside the seed generators: they are in
  ``model.non_trainable_variables`` (which the trainer threads through the step) but not in
  ``model.weights``, so ``get_weights``, ``set_weights`` and saved models do not see them.
- A ``cond`` branch cannot assign a variable: the value would leak out of the branch's trace.
  :func:`when` runs the branch for its values and assigns them after the ``cond``.
- The values are read from ``model._jax_state`` (:meth:`JaxState.value`), without the sync of
  every variable that reading ``Callback.model`` costs; only a host write syncs first.

Example:
    >>> import keras
    >>> from keras import ops
    >>> v = keras.Variable(ops.zeros((2,)))
    >>> when(ops.convert_to_tensor(True), lambda: v.assign(ops.ones((2,))), [v])
    >>> v.numpy().tolist()
    [1.0, 1.0]
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import keras
import numpy as np
from keras import ops
from keras.src.backend.common.stateless_scope import get_stateless_scope


def when(pred, fn: Callable[[], None], variables: list) -> None:
    """Run ``fn``, which assigns some of ``variables``, when ``pred`` holds, as a ``cond`` over
    values: the branch hands out the variables' values after ``fn``, assigned after the ``cond``."""
    before = [v.value for v in variables]

    def branch() -> list:
        try:
            fn()
            return [v.value for v in variables]
        finally:
            _put_back(variables, before)  # nothing traced in the branch may stay behind in the scope

    for v, value in zip(variables, ops.cond(pred, branch, lambda: before)):
        v.assign(value)


_SAVING = ("save_own_variables", "load_own_variables")


def _put_back(variables: list, values: list) -> None:
    """Undo assignments without a new operation: a branch's values must not outlive its trace."""
    scope = get_stateless_scope()
    for v, value in zip(variables, values):
        if scope is not None:
            scope.add_update((v, value))
        else:
            v.assign(value)


class _State:
    """Stands in a model's seed generators so its ``variable`` is in ``model.variables``."""

    def __init__(self, variable: keras.Variable) -> None:
        self.state = variable


def _untrack(optimizer, variables: list) -> None:
    for v in variables:
        optimizer._untrack_variable(v)


def _track(optimizer, variables: list) -> None:
    for v in variables:
        optimizer._track_variable(v)


class JaxState:
    """The statistics variables of one ``fit`` on the JAX backend, and their current values.

    Args:
        model: the model being fitted.
    """

    def __init__(self, model) -> None:
        self.model = model
        self.optimizer = None
        self.optimizer_variables: list = []
        self.model_variables: list = []
        self._holders: list[_State] = []
        self._savers: list = []
        self._hidden = False
        self._index: dict[int, tuple[str, int]] = {}

    def attach(self, optimizer, optimizer_variables: list, model_variables: list) -> None:
        """Make the variables part of the trainer's state (before the first step of ``fit``):
        ``optimizer_variables`` as variables of ``optimizer`` (the one whose ``apply`` writes them),
        ``model_variables`` as model state. A checkpoint saved meanwhile (``ModelCheckpoint``)
        holds the user's optimizer variables only."""
        self.optimizer = optimizer
        self.optimizer_variables = list(optimizer_variables)
        self.model_variables = list(model_variables)
        _track(optimizer, self.optimizer_variables)
        self._holders = [_State(v) for v in self.model_variables]
        self.model._seed_generators.extend(self._holders)
        self._index = {}
        # a LossScaleOptimizer saves its inner optimizer's variables too
        self._savers = list({id(o): o for o in (self.model.optimizer, optimizer)}.values())
        for saver in self._savers:
            for name in _SAVING:
                setattr(saver, name, self._hiding(getattr(saver, name)))

    def detach(self) -> None:
        """Take them out again; the state is synced first, since the trainer's lists are positional."""
        self.sync()
        if self.optimizer is not None:
            _untrack(self.optimizer, self.optimizer_variables)
        for saver in self._savers:
            for name in _SAVING:
                vars(saver).pop(name, None)  # the class's method again
        held = {id(h) for h in self._holders}
        self.model._seed_generators[:] = [s for s in self.model._seed_generators if id(s) not in held]
        self._holders, self.optimizer_variables, self.model_variables, self._index = [], [], [], {}
        self.optimizer, self._savers = None, []

    def _hiding(self, method: Callable) -> Callable:
        def without_statistics(store) -> None:
            with self.hidden():
                method(store)

        return without_statistics

    @contextlib.contextmanager
    def hidden(self) -> Iterator[None]:
        """Leave the optimizer variables out while the optimizer saves or loads its own."""
        if self.optimizer is None or self._hidden:  # a LossScaleOptimizer saving its inner one
            yield
            return
        _untrack(self.optimizer, self.optimizer_variables)
        self._hidden = True
        try:
            yield
        finally:
            self._hidden = False
            _track(self.optimizer, self.optimizer_variables)  # back at the end, where they were

    # ---- host side -----------------------------------------------------------------------

    def _live(self) -> dict | None:
        """The trainer's state when it is newer than the variables, else None."""
        state = getattr(self.model, "_jax_state", None)
        return state if state and not getattr(self.model, "_jax_state_synced", True) else None

    def _where(self, variable: keras.Variable) -> tuple[str, int]:
        if not self._index:
            optimizer = self.model.optimizer
            for i, v in enumerate(optimizer.variables if optimizer is not None else []):
                self._index[id(v)] = ("optimizer_variables", i)
            for i, v in enumerate(self.model.non_trainable_variables):
                self._index[id(v)] = ("non_trainable_variables", i)
        return self._index[id(variable)]

    def value(self, variable: keras.Variable) -> np.ndarray:
        """Host copy of ``variable``'s current value."""
        state = self._live()
        if state is None:
            return np.asarray(variable.value)
        group, i = self._where(variable)
        return np.asarray(state[group][i])

    def sync(self) -> None:
        """Put the trainer's state back into the variables (before the host writes one)."""
        if self._live() is not None:
            self.model.jax_state_sync()
