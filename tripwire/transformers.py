"""`TripwireCallback` for the Hugging Face ``transformers.Trainer``: the public face of
:mod:`tripwire.callbacks.torch.hf_trainer` (where what is read at which point of the Trainer's
loop is written down).

Example:
    >>> from tripwire.transformers import TripwireCallback
    >>> cb = TripwireCallback(stop_on=["dead_relu"], log_dir=False)   # the default rules, dead_relu stops
    >>> "stop" in cb.monitor.engine.actions["dead_relu"]
    True

Then ``Trainer(model, args, train_dataset=..., callbacks=[cb]).train()``.
"""

from __future__ import annotations

from tripwire.callbacks.torch.hf_trainer import TripwireCallback

__all__ = ["TripwireCallback"]
