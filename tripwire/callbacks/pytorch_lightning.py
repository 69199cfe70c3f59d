"""`PLTripwire`: the name :class:`tripwire.LightningTripwire` had for the standalone ``pytorch_lightning``.

One class now serves both Lightning packages; this name stays so that imports and LightningCLI
``class_path`` entries written for it keep working.

Example:
    >>> import pytorch_lightning as pl
    >>> from tripwire import LightningTripwire
    >>> from tripwire.callbacks.pytorch_lightning import PLTripwire
    >>> PLTripwire is LightningTripwire, isinstance(PLTripwire(log_dir=False), pl.Callback)
    (True, True)
"""

from __future__ import annotations

from tripwire.callbacks.lightning import LightningTripwire, PLTripwire

__all__ = ["LightningTripwire", "PLTripwire"]
