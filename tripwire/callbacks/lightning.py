"""`LightningTripwire`: training-health rules as a ``lightning.pytorch`` callback.

Example:
    >>> import lightning.pytorch as pl
    >>> from tripwire import LightningTripwire
    >>> cb = LightningTripwire({"interval": 5, "rules": {"dead_relu": {}}}, stop_on=["dead_relu"], log_dir=False)
    >>> isinstance(cb, pl.Callback), cb.monitor.interval, cb.findings
    (True, 5, [])

For the standalone ``pytorch_lightning`` package use
:class:`tripwire.callbacks.pytorch_lightning.PLTripwire` (also importable from here as
``PLTripwire``); the two packages' classes are distinct, so each needs its own adapter.
"""

from __future__ import annotations

from typing import Any

from tripwire.callbacks.missing_framework import missing_framework

try:
    import lightning.pytorch as pl
except ModuleNotFoundError as exc:
    raise missing_framework("LightningTripwire", exc) from exc

from tripwire.arguments import shared_arguments
from tripwire.callbacks.torch.lightning import TripwireCallbackImpl

__all__ = ["LightningTripwire"]  # PLTripwire: see the module __getattr__


@shared_arguments
class LightningTripwire(TripwireCallbackImpl, pl.Callback):
    """Catch broken training runs while they happen (``lightning.pytorch``).

    Every ``interval`` optimizer steps it computes, on the device and only for the enabled
    rules, the statistics they need (gradients, weights, activations, losses, data), reads
    them back in one host copy, evaluates the rules, and acts: alerts, stops every rank
    together, saves a checkpoint, or raises :class:`tripwire.RuleTriggered`.

    Args:
        config: YAML path or text, a dict, a :class:`tripwire.Config`, or None for the
            default rule set (tuned to stay silent on healthy runs).
        {shared arguments}
        batch_fn: ``batch -> (inputs, labels)`` for batches that are not ``(x, y)`` or a dict
            with common keys (``input_ids``/``x``/``inputs`` and ``labels``/``y``/``target``).
        name: distinguishes two instances in one Trainer (their checkpoint ``state_key``).

    Attributes:
        findings: every :class:`tripwire.Finding` so far.
        stopped_by: the finding that stopped training, or None.
        monitor: the :class:`tripwire.Monitor` (engine, alerts, run record).

    Schedule: step ``S`` (``trainer.global_step`` when its batch starts) is sampled when
    :meth:`tripwire.Monitor.due` says so (0, ``interval``, ...); its statistics are flushed after
    its optimizer step. On CUDA the host copy is non-blocking and the rules see it at the next
    training batch end (one batch later), so the GPU never waits for tripwire. Under DDP every
    rank reduces the per-rank statistics with one collective per flush and agrees on each
    decision with ``trainer.strategy.reduce_boolean_decision``.

    Validation: ``val_loss`` is read from ``trainer.callback_metrics`` (key
    ``metrics.val_loss`` in the config). The confusion matrix needs no code when the
    validation batch is ``(x, y)`` and ``validation_step`` calls ``self(x)`` for logits; for
    other models return ``{"preds": logits_or_ids, "target": y, ...}`` from ``validation_step``.
    """

    _package = "lightning"


def __getattr__(name: str) -> Any:
    if name == "PLTripwire":
        from tripwire.callbacks.pytorch_lightning import PLTripwire

        return PLTripwire
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
