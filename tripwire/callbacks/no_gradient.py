"""Telling the user, once per run, which trainable parameters got no gradient.

A trainable parameter the loss does not depend on (a head the forward pass skips, a branch cut
off with ``detach``/``stop_gradient``) gets no gradient at all: torch leaves ``.grad`` None, Keras
hands the optimizer a None gradient. It never moves, and that is not a learning rate that is too
low: the collectors leave it out of ``update_ratio`` and ``weight_unchanged`` (what
``small_updates`` and ``unchanged_tensor`` read) on the steps where it has none, and the adapter
says so once with this notice. A parameter whose gradient is there but zero still counts: that
one is stuck for a reason the rules are made to find.

Example:
    >>> notice = NoGradientNotice()
    >>> print(NoGradientNotice.message(["head.weight", "head.bias"], step=0))
    tripwire: 2 trainable parameters got no gradient at step 0 (head.weight, head.bias): the loss
    does not depend on them (not used in forward, or cut off with detach/stop_gradient); they are
    left out of small_updates and unchanged_tensor while they get none
    >>> notice.see([], step=0), notice.told
    (None, False)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger("tripwire")

_SHOWN = 8  # names in the message


class NoGradientNotice:
    """Logs :meth:`message` the first time a sampled step has trainable parameters without a gradient."""

    def __init__(self) -> None:
        self.told = False

    def see(self, names: Sequence[str], step: int) -> None:
        """The parameters of a sampled step that got no gradient (warns once per run)."""
        if names and not self.told:
            self.told = True
            log.warning("%s", self.message(names, step))

    @staticmethod
    def message(names: Sequence[str], step: int) -> str:
        """One line naming the parameters (the first few when there are many)."""
        shown = ", ".join(names[:_SHOWN]) + (f", +{len(names) - _SHOWN} more" if len(names) > _SHOWN else "")
        many = len(names) != 1
        return (f"tripwire: {len(names)} trainable parameter{'s' if many else ''} got no gradient at step {step} "
                f"({shown}): the loss does not depend on {'them' if many else 'it'} (not used in forward, or cut "
                f"off with detach/stop_gradient); {'they are' if many else 'it is'} left out of small_updates and "
                f"unchanged_tensor while {'they get' if many else 'it gets'} none")
