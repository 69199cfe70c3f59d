"""`LightningTripwire`: training-health rules as a Lightning callback, for either Lightning package.

``lightning.pytorch`` and the standalone ``pytorch_lightning`` are separate distributions with
separate class hierarchies. This one class derives from the ``Callback`` of each of them that
imports, so it works with either package's ``Trainer`` (with both installed, with both in one
process) and LightningCLI of either accepts ``class_path: tripwire.LightningTripwire``.
``PLTripwire``, the name it once had for ``pytorch_lightning``, is the same class.

Example:
    >>> import lightning.pytorch as pl
    >>> from tripwire import LightningTripwire
    >>> cb = LightningTripwire({"interval": 5, "rules": {"dead_relu": {}}}, stop_on=["dead_relu"], log_dir=False)
    >>> isinstance(cb, pl.Callback), cb.monitor.interval, cb.findings
    (True, 5, [])
"""

from __future__ import annotations

import importlib

from tripwire.arguments import shared_arguments
from tripwire.callbacks.missing_framework import missing_framework
from tripwire.callbacks.torch.lightning import TripwireCallbackImpl

__all__ = ["LightningTripwire", "PLTripwire"]

#: the Lightning packages, as imported: the one named first is the one a missing framework names
PACKAGES = ("lightning.pytorch", "pytorch_lightning")


def _callback_classes() -> tuple[type, ...]:
    """The ``Callback`` class of each Lightning package that imports (one or both).

    A package that fails to import is left out, so a broken install of the package you do not use
    does not break the one you do; when neither imports, the first one's error is raised.
    """
    found, errors = [], []
    for package in PACKAGES:
        try:
            found.append(importlib.import_module(package).Callback)
        except ImportError as exc:
            errors.append(exc)
    if found:
        return tuple(found)
    first = errors[0]
    if isinstance(first, ModuleNotFoundError):
        raise missing_framework("LightningTripwire", first) from first
    raise first


@shared_arguments
class LightningTripwire(TripwireCallbackImpl, *_callback_classes()):
    """Catch broken training runs while they happen (``lightning.pytorch`` or ``pytorch_lightning``).

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


PLTripwire = LightningTripwire
