"""The ``reduce_lr`` action in Keras: the optimizer's learning rate, lowered in place.

Keras keeps a float learning rate in a variable of the optimizer that the compiled train step
reads, so assigning it between two steps (as Keras's own ``ReduceLROnPlateau`` does) changes every
later update, on every backend (on JAX through the trainer's state: :func:`~tripwire.callbacks.
keras.training_state.user_view`). A ``LearningRateSchedule`` is a function of the step count
compiled into the train step: no value outside it can be scaled, so a config that asks
``reduce_lr`` of a model whose optimizer has one is refused when training starts
(:func:`why_not_scalable`). A ``keras.callbacks.LearningRateScheduler`` beside tripwire writes its
own rate at each epoch, over the lowered one.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    >>> why_not_scalable(model.optimizer) is None
    True
    >>> [round(v, 6) for v in lower_learning_rate(model, None, factor=0.5, min_lr=0.0)]
    [0.1, 0.05]
    >>> cosine = keras.optimizers.schedules.CosineDecay(0.1, decay_steps=100)
    >>> why_not_scalable(keras.optimizers.SGD(cosine))
    'its learning rate is a CosineDecay, compiled into the train step'
"""

from __future__ import annotations

from typing import Any

import keras

from tripwire.callbacks.keras.optimizer import counting_optimizer
from tripwire.callbacks.keras.training_state import user_view


def why_not_scalable(optimizer: Any) -> str | None:
    """Why ``reduce_lr`` cannot lower ``optimizer``'s learning rate, or None when it can."""
    rate = getattr(counting_optimizer(optimizer), "_learning_rate", None)
    if isinstance(rate, keras.Variable):
        return None
    return f"its learning rate is a {type(rate).__name__}, compiled into the train step"


def lower_learning_rate(model: Any, collector: Any, factor: float, min_lr: float) -> tuple[float, float]:
    """Multiply the learning rate of ``model``'s optimizer by ``factor``, never below ``min_lr`` (nor
    above the rate itself); the rate before and after."""
    optimizer = counting_optimizer(model.optimizer)
    why = why_not_scalable(optimizer)
    if why is not None:
        raise TypeError(f"reduce_lr cannot lower the optimizer's learning rate: {why}")
    with user_view(model, collector):
        variable = optimizer._learning_rate
        before = float(keras.ops.convert_to_numpy(variable.value))
        after = max(before * factor, min(before, min_lr))
        variable.assign(after)
    return before, after
