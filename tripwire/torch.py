"""tripwire in a plain PyTorch training loop: :class:`Tripwire` (also under Lightning Fabric or Accelerate).

Importing this module imports torch (``import tripwire`` alone does not); without it the
``ModuleNotFoundError`` names the extra that installs it. The implementation is in
:mod:`tripwire.callbacks.torch.loop`.

Example:
    >>> from tripwire.torch import Tripwire
    >>> from tripwire.callbacks.torch.loop import Tripwire as Implementation
    >>> Tripwire is Implementation
    True
"""

from __future__ import annotations

from tripwire.callbacks.torch.loop import Tripwire

__all__ = ["Tripwire"]
