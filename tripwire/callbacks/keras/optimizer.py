"""The hook where the optimizer applies the gradients: a mixin over the user's optimizer class.

A Keras callback never sees gradients. :func:`attach` swaps the class of the user's own
optimizer object for a subclass created on the fly (``TripwireApply`` mixed into that class;
same name and module, so a ``model.save`` during training writes the same config) whose
``apply`` goes through the collector, which computes the statistics around the real update
(:mod:`tripwire.callbacks.keras.params`) and judges the step's spikes
(:mod:`tripwire.callbacks.keras.spike`), and whose ``scale_loss``, which Keras's ``train_step``
calls with the batch's loss, hands that loss to the collector; :func:`detach` swaps the original
class back. The
user's code changes only by adding the callback. A ``LossScaleOptimizer`` (mixed precision)
gets the mixin itself, so the steps its scaler skips are seen (on JAX, whose loss-scale
optimizer never calls its own ``apply``, its inner optimizer does).

Example:
    >>> import keras
    >>> opt = keras.optimizers.Adam(1e-3)
    >>> attach(opt, collector=None)
    >>> type(opt).__name__, isinstance(opt, TripwireApply), isinstance(opt, keras.optimizers.Adam)
    ('Adam', True, True)
    >>> detach(opt)
    >>> type(opt) is keras.optimizers.Adam
    True
"""

from __future__ import annotations

import weakref

import keras

_COLLECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_CLASSES: dict[type, type] = {}


class TripwireApply:
    """Mixin over an optimizer class: ``apply`` routes through the attached collector, if any.

    Without a collector (after :func:`detach`, or in a copy loaded from disk) it is the plain
    optimizer.
    """

    _tripwire_base: type = object

    def apply(self, grads, trainable_variables=None):  # Keras signature
        collector = _COLLECTORS.get(self)
        if collector is None:
            return super().apply(grads, trainable_variables)
        return collector.around_apply(self, super().apply, grads, trainable_variables)

    def scale_loss(self, loss):  # Keras signature; ``train_step`` calls it with the batch's loss
        collector = _COLLECTORS.get(self)
        if collector is not None:
            collector.note_loss(loss)
        return super().scale_loss(loss)


def stats_class(base: type) -> type:
    """The ``TripwireApply`` subclass of ``base`` (one per class), named like ``base``."""
    if base not in _CLASSES:
        _CLASSES[base] = type(base.__name__, (TripwireApply, base),
                              {"__module__": base.__module__, "__qualname__": base.__qualname__,
                               "__doc__": base.__doc__, "_tripwire_base": base})
    return _CLASSES[base]


def attach(optimizer, collector) -> None:
    """Route ``optimizer.apply`` through ``collector`` (idempotent)."""
    cls = type(optimizer)
    base = cls._tripwire_base if issubclass(cls, TripwireApply) else cls
    optimizer.__class__ = stats_class(base)
    if collector is not None:
        _COLLECTORS[optimizer] = collector


def detach(optimizer) -> None:
    """Give ``optimizer`` its own class back."""
    _COLLECTORS.pop(optimizer, None)
    cls = type(optimizer)
    if issubclass(cls, TripwireApply):
        optimizer.__class__ = cls._tripwire_base


def counting_optimizer(optimizer):
    """The optimizer whose ``_iterations`` count the steps (the inner one of a LossScaleOptimizer)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def accumulation_steps(optimizer) -> int:
    """``gradient_accumulation_steps``, or 1."""
    return int(getattr(counting_optimizer(optimizer), "gradient_accumulation_steps", None) or 1)


def is_loss_scaled(optimizer) -> bool:
    """Whether ``optimizer`` is a ``LossScaleOptimizer`` (mixed precision)."""
    return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def learning_rate(optimizer, read, *, applied: bool = False) -> float:
    """The learning rate ``optimizer`` applies at its current step, with variables read through
    ``read(variable) -> array`` (on JAX, from the trainer's state: no state sync), as Keras's own
    ``learning_rate`` property computes it (a schedule called with the step count). With
    ``applied``: the rate its latest update applied (a schedule called with the count before it
    went up; under gradient accumulation the count is of micro-batches, and the update is the
    last micro-batch's), so that a sample's rate is its step's.

    Example:
        >>> import numpy as np
        >>> schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
        >>> opt = keras.optimizers.SGD(schedule)
        >>> _ = opt.iterations.assign(2)
        >>> read = lambda v: np.asarray(v.value)
        >>> round(learning_rate(opt, read), 6), round(learning_rate(opt, read, applied=True), 6)
        (0.025, 0.05)
    """
    inner = counting_optimizer(optimizer)
    rate = inner._learning_rate
    if isinstance(rate, keras.optimizers.schedules.LearningRateSchedule):
        count = read(inner._iterations)
        rate = rate(count - 1 if applied and count > 0 else count)
    elif isinstance(rate, keras.Variable):
        rate = read(rate)
    elif callable(rate):
        rate = rate()
    return float(keras.ops.convert_to_numpy(rate).reshape(-1)[0])
