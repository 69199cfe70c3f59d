"""Host copies of a Keras training state for the ``rollback`` action (:mod:`tripwire.rollback`).

A state is the value of every model weight (trainable and not: BatchNorm's moving statistics
too) and of the optimizer's variables (Adam's moments) as NumPy arrays, read and written through
the user's view of the optimizer (:meth:`~tripwire.callbacks.keras.collector.Collector.saving`:
tripwire's own statistics variables are left out; on JAX the trainer's state is synced first and
read again at the next step). The optimizer's step counter and learning rate are left out: a
rollback does not rewind the step counter, and the schedule follows it.

Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adam", loss="mse")
    >>> kept = KerasTrainingState(model, collector=lambda: None)
    >>> state = kept.capture()
    >>> _ = model.fit(np.ones((8, 2)), np.ones((8, 1)), epochs=2, verbose=0)
    >>> kept.restore(state)
    >>> bool(np.allclose(model.get_weights()[0], state[0])), int(model.optimizer.iterations.numpy())
    (True, 2)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np


@contextlib.contextmanager
def user_view(model: Any, collector: Any) -> Iterator[None]:
    """While the host reads or writes ``model``'s variables during ``fit``: the user's own optimizer
    (tripwire's statistics variables out of sight) and, on JAX, the values synced from the trainer's
    state, which Keras reads again at the next step."""
    if collector is not None:
        with collector.saving():
            yield
        return
    if keras.backend.backend() == "jax" and getattr(model, "_jax_state", None) is not None:
        model.jax_state_sync()
    yield


class KerasTrainingState:
    """Captures and restores a Keras model's weights and optimizer variables (see the module docstring).

    Args:
        model: the model ``fit`` trains (compiled).
        collector: ``() -> Collector or None``: tripwire's instrumentation of the model, if installed.
    """

    def __init__(self, model: Any, collector: Callable[[], Any]) -> None:
        self.model, self.collector = model, collector
        optimizer = model.optimizer
        if not optimizer.built and model.trainable_variables:
            with self._user_view():
                optimizer.build(model.trainable_variables)  # its slots exist from the first state on

    def _user_view(self) -> contextlib.AbstractContextManager[None]:
        return user_view(self.model, self.collector())

    def _variables(self) -> list[Any]:
        optimizer = self.model.optimizer
        left_out = {id(optimizer.iterations), id(getattr(optimizer, "_learning_rate", None))}
        collector = self.collector()
        if collector is not None and collector.jax is not None:  # on JAX tripwire's own are optimizer variables
            left_out |= {id(v) for v in collector.jax.optimizer_variables}
        return [*self.model.weights, *(v for v in optimizer.variables if id(v) not in left_out)]

    def capture(self) -> list[np.ndarray]:
        """A host copy of the state now."""
        with self._user_view():
            return [np.array(keras.ops.convert_to_numpy(v.value), copy=True) for v in self._variables()]

    def restore(self, values: list[np.ndarray]) -> None:
        """Put a captured state back (the next step trains from it)."""
        with self._user_view():
            variables = self._variables()
            if len(variables) != len(values):
                raise ValueError(f"the model now has {len(variables)} weights and optimizer variables, the kept "
                                 f"state {len(values)}")
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
