"""The instrumented train function, falling back to the model's own when it fails.

Tripwire's code that runs while Keras traces the instrumented train step is guarded where it
runs (:meth:`~tripwire.callbacks.keras.collector.Collector.around_apply`). What can still fail
is the compiled step as a whole: XLA refusing to compile one of the statistics' operations, an
operation without a kernel on the device, memory. :func:`guarded_train_function` calls the
instrumented function and, when it raises, reports the failure and runs the model's own
(plain) train function on the same batch; the caller makes the plain function the model's
for the rest of the run.

A retry must neither skip nor repeat a batch. How ``fit`` hands the batches over (Keras 3.15):

- TensorFlow: ``train_function(iterator)`` gets a ``tf.data`` (or distributed) iterator and calls
  ``get_next`` inside its ``tf.function``. A failure while tracing, or while TensorFlow
  instantiates the function (an operation without a kernel on the device), comes before any of
  it ran: the retry gets the same iterator, whose next batch is still the same. With
  ``jit_compile=True`` the step is an XLA function nested in the one that takes the batch, and
  XLA compiles it when it is first called, after ``get_next`` ran: so with one step per call the
  batch is taken here, eagerly, and passed as a one-batch list, which Keras's own function also
  accepts (it runs ``one_step_on_data`` on each element of a Python iterable); the retry gets
  the same batch. With ``jit_compile=True`` and ``steps_per_execution > 1`` the batches are taken
  inside the compiled loop and cannot be handed back: such a call is not retried, its batches
  are not trained, and its logs are the metrics so far. A failure in the middle of a running
  step (out of memory) before its update cannot be told from one before it started: that batch
  is then trained in place of the next one, which is skipped.
- JAX: ``train_function(state, iterator)`` calls ``next`` on a Python iterator; the batches taken
  are kept and handed to the retry first. The state is donated to the jitted step: a failure
  before the step ran (tracing, compiling) leaves it intact. Once a step of the call has run
  (a later step of a ``steps_per_execution`` call), the state it consumed is gone and the
  failure is raised: nothing can go on from there.
- torch: ``train_function(data)`` gets the batch itself.

A step that applied its update before failing (the optimizer's step counter moved) is not run
again: its logs are the metrics so far.

Example:
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> model.make_train_function()
    >>> plain = model.train_function
    >>> def broken(*args):
    ...     raise RuntimeError("no XLA kernel")
    >>> failures = []
    >>> model.train_function = guarded_train_function(model, broken, plain, failures.append, lambda: None)
    >>> _ = model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=4, epochs=1, verbose=0, shuffle=False)
    >>> [str(e) for e in failures], int(model.optimizer.iterations)
    (['no XLA kernel', 'no XLA kernel'], 2)
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import keras

from tripwire.callbacks.keras.buffer import to_numpy
from tripwire.callbacks.keras.optimizer import counting_optimizer


def guarded_train_function(model, instrumented: Callable, plain: Callable, on_failure: Callable[[Exception], None],
                           steps_done: Callable[[], int | None]) -> Callable:
    """``instrumented``, retried as ``plain`` on the same batch when it raises.

    Args:
        model: the model being fitted.
        instrumented: the train function that computes the statistics.
        plain: the model's own train function (made before tripwire wrapped anything).
        on_failure: told the exception first (it raises it again under ``strict``).
        steps_done: the optimizer's step count before this call, when the caller knows it
            (then a step that already applied its update is not run again).
    """
    backend = keras.backend.backend()
    if backend == "jax":
        return _jax(instrumented, plain, on_failure)
    xla = backend == "tensorflow" and bool(getattr(model, "jit_compile", False))
    one_step = int(getattr(model, "steps_per_execution", 1) or 1) == 1

    def applied() -> bool:
        done = steps_done()
        return done is not None and int(to_numpy(counting_optimizer(model.optimizer)._iterations)) != done

    def function(source):  # an iterator (TensorFlow) or a batch (torch)
        replayable = not xla or (one_step and hasattr(source, "get_next"))
        if xla and replayable:
            source = [_next_batch(source)]
        try:
            return instrumented(source)
        except StopIteration:
            raise
        except Exception as exc:  # noqa: BLE001 - reported through on_failure
            on_failure(exc)
            if not replayable or applied():
                return model.get_metrics_result()
            return plain(source)

    return function


def _next_batch(iterator):
    """The next batch of a ``tf.data`` iterator; ``StopIteration`` at its end, as ``fit`` expects."""
    import tensorflow as tf

    try:
        return iterator.get_next()
    except tf.errors.OutOfRangeError:
        raise StopIteration from None


class _Replay:
    """An iterator that keeps what it hands out."""

    def __init__(self, iterator: Iterator) -> None:
        self.iterator, self.taken = iterator, []

    def __iter__(self) -> _Replay:
        return self

    def __next__(self) -> object:
        item = next(self.iterator)
        self.taken.append(item)
        return item


def _jax(instrumented: Callable, plain: Callable, on_failure: Callable[[Exception], None]) -> Callable:
    import jax

    def function(state, iterator):
        replay = _Replay(iterator)
        try:
            return instrumented(state, replay)
        except StopIteration:
            raise
        except Exception as exc:
            on_failure(exc)
            if any(leaf.is_deleted() for leaf in jax.tree_util.tree_leaves(state) if hasattr(leaf, "is_deleted")):
                raise  # a step of this call ran and consumed the state: nothing to go on from
            return plain(state, itertools.chain(replay.taken, iterator))

    return function
