"""A small dense Keras model, seeded (imports Keras).

Example:
    >>> model = mlp(features=4, classes=3, hidden=(8,))
    >>> [layer.name for layer in model.layers], model.output_shape
    (['hidden0', 'head'], (None, 3))
"""

from __future__ import annotations

from typing import Any

import keras


def mlp(features: int = 20, classes: int = 3, hidden: tuple[int, ...] = (32, 32), activation: str = "relu",
        seed: int = 0, head: str | None = "softmax", **dense_kwargs: Any) -> keras.Model:
    """Dense layers ``hidden0``, ``hidden1``, ... and a ``head`` with that activation (None: logits);
    ``dense_kwargs`` go to the hidden layers. The weights are drawn from ``seed``."""
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((features,))]
    layers += [keras.layers.Dense(h, activation=activation, name=f"hidden{i}", **dense_kwargs)
               for i, h in enumerate(hidden)]
    layers.append(keras.layers.Dense(classes, activation=head, name="head"))
    return keras.Sequential(layers, name="net")
