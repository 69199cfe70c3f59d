"""The Keras 3 wing: :class:`KerasTripwire` and the in-graph collector behind it.

Importing this package imports Keras (through :mod:`~tripwire.callbacks.keras.callback`); without
Keras the ``ModuleNotFoundError`` names the extra that installs it. The modules:

- :mod:`~tripwire.callbacks.keras.callback`: the ``keras.callbacks.Callback``;
- :mod:`~tripwire.callbacks.keras.collector`: the instrumented train step, one packed read per flush;
- :mod:`~tripwire.callbacks.keras.params`, :mod:`~tripwire.callbacks.keras.activations`,
  :mod:`~tripwire.callbacks.keras.data`, :mod:`~tripwire.callbacks.keras.init`: what each family of
  statistics measures, in ``keras.ops`` (:mod:`~tripwire.callbacks.keras.math`);
- :mod:`~tripwire.callbacks.keras.buffer`: the packed statistics variable;
- :mod:`~tripwire.callbacks.keras.optimizer`: the ``apply`` hook and the step counter;
- :mod:`~tripwire.callbacks.keras.spike`: ``loss_spike`` judged in the train step at every step, and the
  ``skip_step`` gate on the update;
- :mod:`~tripwire.callbacks.keras.fallback`: the model's own train function when the instrumented
  one cannot run;
- :mod:`~tripwire.callbacks.keras.jax`: the stateless JAX trainer.

Example:
    >>> import tripwire
    >>> from tripwire.callbacks.keras import KerasTripwire
    >>> KerasTripwire is tripwire.KerasTripwire
    True
"""

from __future__ import annotations

from tripwire.callbacks.keras.callback import KerasTripwire

__all__ = ["KerasTripwire"]
