"""`PLTripwire`: the same callback for the standalone ``pytorch_lightning`` package.

``lightning.pytorch`` and ``pytorch_lightning`` are separate distributions with separate
class hierarchies; use this class with a ``pytorch_lightning.Trainer``.

Example:
    >>> import pytorch_lightning as pl
    >>> from tripwire.callbacks.pytorch_lightning import PLTripwire
    >>> isinstance(PLTripwire(log_dir=False), pl.Callback)
    True
"""

from __future__ import annotations

from tripwire.callbacks.missing_framework import missing_framework

try:
    import pytorch_lightning as pl
except ModuleNotFoundError as exc:
    raise missing_framework("PLTripwire", exc) from exc

from tripwire.arguments import shared_arguments
from tripwire.callbacks.torch.lightning import TripwireCallbackImpl

__all__ = ["LightningTripwire", "PLTripwire"]


@shared_arguments
class PLTripwire(TripwireCallbackImpl, pl.Callback):
    """:class:`tripwire.LightningTripwire` for ``pytorch_lightning``; same arguments and behaviour."""

    _package = "pytorch_lightning"


LightningTripwire = PLTripwire
