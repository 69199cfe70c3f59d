"""`Tripwire`: tripwire rules in a plain PyTorch training loop (also under Lightning Fabric or Accelerate).

Public as :class:`tripwire.torch.Tripwire`. Two lines in the loop: ``tw.step(loss)`` after the
optimizer step, and a look at ``tw.should_stop``.

Example:
    >>> import torch
    >>> from tripwire.torch import Tripwire
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=1e9)   # a learning rate that blows up
    >>> with Tripwire(model, optimizer, {"interval": 2, "rules": {"nonfinite": {}}}, log_dir=False) as tw:
    ...     for step in range(50):
    ...         x = torch.randn(16, 8)
    ...         loss = (model(x) - x[:, :1]).square().mean()
    ...         loss.backward()
    ...         optimizer.step(); optimizer.zero_grad()
    ...         if tw.step(loss):                      # the same as tw.should_stop after tw.step
    ...             break
    tripwire: 1 finding (1 error); training stopped at step 2 by nonfinite
    ...
    >>> step, tw.stopped_by.rule
    (2, 'nonfinite')
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from tripwire.callbacks.missing_framework import missing_framework

try:
    import torch
except ModuleNotFoundError as exc:
    raise missing_framework("tripwire.torch.Tripwire", exc) from exc

from tripwire.arguments import shared_arguments
from tripwire.callbacks.torch.driver import TorchDriver
from tripwire.callbacks.torch.parts import GRADIENTS, OPTIMIZER_HOOKS, VAL_LOSS
from tripwire.callbacks.torch.ranks import torch_distributed_ranks
from tripwire.callbacks.torch.training_state import TrainingState
from tripwire.callbacks.torch.unwrap import inner_module, inner_optimizer
from tripwire.config import FROM_CONFIG, FromConfig
from tripwire.finding import Finding
from tripwire.monitor import Monitor

F = TypeVar("F", bound=Callable[..., Any])


def _closing_on_error(method: F) -> F:
    """A method that closes the Tripwire when an exception leaves it (a ``raise`` action,
    ``strict=True``): the model's hooks are removed and the run record is closed."""
    @functools.wraps(method)
    def guarded(self: Tripwire, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except BaseException as exc:
            self._teardown(error=exc)
            raise

    return guarded  # type: ignore[return-value]


@shared_arguments
class Tripwire:
    """Watch a plain PyTorch training loop with tripwire rules; stop, alert, checkpoint or raise on findings.

    Gradients are read through the optimizer's own step hooks, where they are final (unscaled by
    ``GradScaler``, after clipping and DDP averaging), so nothing is added between ``backward`` and
    ``optimizer.step()``. Activations come from forward hooks on the model's modules, attached here
    (before the first forward, so ``torch.compile`` traces them) and removed by :meth:`close`.

    Steps: ``step`` is the 0-based index of an optimizer step, as in every tripwire adapter; step
    ``S`` is sampled when :meth:`tripwire.Monitor.due` says so (0, ``interval``, ...). Call
    :meth:`step` once per batch, after the optimizer step: under gradient accumulation, on every
    micro-batch (the counter moves only when the optimizer stepped, so every micro-batch of a
    sampled step is sampled). With ``torch.amp.GradScaler``, pass it as ``scaler``: a step it
    skipped (Inf gradients, its optimizer step not run) then counts as a step too, as in every
    adapter, so a loss that stays NaN is still sampled and caught; without it such steps are not
    counted. Data statistics (class counts, input scale, token share) come from the
    ``inputs``/``labels`` given to :meth:`step` on sampled steps.

    Under ``torch.distributed`` (DDP, Fabric, Accelerate) every rank reduces the per-rank
    statistics with one collective per flush and agrees on each decision with one boolean
    ``all_reduce``, so ``should_stop`` turns true on every rank at the same step; alerts and the
    run record come from rank 0. Call :meth:`step`, :meth:`validation` and :meth:`close` on every rank.

    Actions: ``skip_step`` (``loss_spike``) drops the gradients of a step whose gradient norm spiked,
    in the optimizer's step pre-hook, so the update is not applied; ``reduce_lr`` scales the learning
    rates around each optimizer step (an LR scheduler keeps its own values);
    ``stop`` sets :attr:`should_stop`; ``raise`` raises :class:`tripwire.RuleTriggered`
    from :meth:`step` (or :meth:`validation`) after closing the Tripwire; ``checkpoint`` saves
    ``{"model", "optimizer", "step", "tripwire"}`` with ``torch.save`` (the model's and optimizer's
    ``state_dict``; ``optimizer`` is a list when several were given; ``tripwire`` is
    :meth:`state_dict`) from rank 0, as ``tripwire-<rule>-step<S>.pt`` in the run record's folder
    (``./tripwire_checkpoints`` without a record). Sharded strategies (FSDP, ZeRO) gather their
    state with collectives of their own: there, use ``stop`` and save as your strategy requires.

    The Tripwire never breaks training (:mod:`tripwire.failopen`): a failing part of its own
    instrumentation is switched off with one warning naming it (``strict=True`` raises instead).

    Args:
        model: the model trained (wrappers are looked through: ``torch.compile``, DDP, Fabric,
            Accelerate; see :mod:`~tripwire.callbacks.torch.unwrap`).
        optimizer: its optimizer, or a sequence of optimizers (a GAN's); wrappers are looked through.
        config: YAML path or text, a dict, a :class:`tripwire.Config`, or None for the default rule
            set (tuned to stay silent on healthy runs).
        {shared arguments}
        scaler: the loop's ``torch.amp.GradScaler``, if any (see the steps above).

    Attributes:
        should_stop: whether a ``stop`` action fired (on every rank at once).
        steps: optimizer steps completed (the index of the step in progress).
        findings: every :class:`tripwire.Finding` so far; stopped_by: the finding that stopped training.
        monitor: the :class:`tripwire.Monitor` (engine, alerts, run record).
    """

    def __init__(self, model: torch.nn.Module, optimizer: Any, config: Any = None, *, stop_on: Iterable[str] = (),
                 interval: int | None = None, log_dir: str | bool | FromConfig | None = FROM_CONFIG,
                 strict: bool | None = None, run_name: str | None = None, scaler: Any = None) -> None:
        self.monitor = Monitor(config, stop_on=stop_on, interval=interval, log_dir=log_dir, strict=strict,
                               framework="torch", run_name=run_name,
                               remediations=("skip_step", "reduce_lr", "rollback"))
        self.model = inner_module(model)
        optimizers = optimizer if isinstance(optimizer, Sequence) else [optimizer]
        self.optimizers = [inner_optimizer(o) for o in optimizers]
        self.steps = 0
        self.should_stop = False
        self._optimizer_stepped = False
        self.scaler = scaler
        self._scale_version = self._scaler_version()
        self._val_losses: list[Any] = []
        self._handles: list[Any] = []
        self._closed = False
        device = next((p.device for p in self.model.parameters()), torch.device("cpu"))
        self.driver = TorchDriver(self.monitor)
        self.driver.connect(torch_distributed_ranks(device), _LoopSink(self))
        self.driver.build(self.model)
        self.driver.start(self.model, device)
        self._hooked = self.monitor.guard.call(OPTIMIZER_HOOKS, self._hook_optimizers, fallback=False)
        self.driver.attach_optimizers(self.optimizers)
        self.driver.keep_states(lambda: TrainingState(self.model, self.optimizers, lambda: self.scaler))
        # taken now, before the first update; decided at the first step() (load_state_dict drops it)
        self.driver.initial_sample(step=0, epoch=None, defer=True)
        self.driver.begin_step(0)

    def _hook_optimizers(self) -> bool:
        for optimizer in self.optimizers:
            self._handles.append(optimizer.register_step_pre_hook(self._before_optimizer_step))
            self._handles.append(optimizer.register_step_post_hook(self._after_optimizer_step))
        return True

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        with self.monitor.guard.attempt(GRADIENTS):  # a hook that raises would end the user's step
            self.driver.before_optimizer_step(optimizer)

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._optimizer_stepped = True

    def _scaler_version(self) -> int | None:
        """How often the scaler's scale was written in place: ``GradScaler.update`` writes it once
        per optimizer step, taken or skipped (a host-side counter: nothing is read from the device)."""
        scale = getattr(self.scaler, "_scale", None)
        return scale._version if isinstance(scale, torch.Tensor) else None

    def _scaler_skipped(self) -> bool:
        """Whether the scaler skipped an optimizer step since the last call (its scale was updated)."""
        version = self._scaler_version()
        updated = version != self._scale_version
        self._scale_version = version
        return updated and not self._optimizer_stepped

    # public ----------------------------------------------------------------------------------------
    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, in order."""
        return self.monitor.findings

    @property
    def stopped_by(self) -> Finding | None:
        """The finding that stopped training, or None."""
        return self.monitor.stopped_by

    @_closing_on_error
    def step(self, loss: Any = None, *, inputs: Any = None, labels: Any = None) -> bool:
        """One training batch is done (after ``optimizer.step()``, or after ``backward`` on a
        micro-batch whose gradients accumulate); returns :attr:`should_stop`.

        Args:
            loss: the batch's training loss, a device tensor (nothing is read on the host until the
                next flush). Under gradient accumulation, the batch's own loss, not the one divided
                by the number of micro-batches.
            inputs: the batch's model inputs (float features or token ids), for the data rules.
            labels: the batch's integer class labels, for ``class_imbalance``.

        Raises:
            RuleTriggered: a rule with the ``raise`` action fired (the Tripwire is closed first).
        """
        if self._closed:
            return self.should_stop
        skipped = self._scaler_skipped()
        stepped = self._optimizer_stepped or skipped if self._hooked else True
        self._optimizer_stepped = False
        if inputs is not None or labels is not None:
            self.driver.add_batch((inputs, labels))
        if skipped:
            self.driver.stepped = True  # flushed like any step: losses, data and weights, no gradients
        self.driver.end_batch(lambda: loss, epoch=None)
        if stepped:
            self.steps += 1
        self.driver.begin_step(self.steps)  # the next batch's: the same step when the optimizer did not step
        return self.should_stop

    def validation_batch(self, preds: Any = None, target: Any = None, *, loss: Any = None) -> None:
        """Add one validation batch to the validation run in progress (ended by :meth:`validation`).

        Args:
            preds: the model's predictions, a tensor: logits ``(N, C)`` or ``(N, T, C)``, one logit
                column for binary targets, or class ids; for ``classifier_confusion``.
            target: the batch's integer labels (negative ones are skipped).
            loss: the batch's validation loss (a tensor or a number); the run's ``val_loss`` is
                the mean over the batches that gave one.
        """
        if self._closed:
            return
        if preds is not None and self.driver.validating:
            self.driver.collector.validation_batch({"preds": preds, "target": target}, None)
        if loss is not None:
            self._val_losses.append(loss)

    @_closing_on_error
    def validation(self, preds: Any = None, target: Any = None, *, loss: Any = None) -> bool:
        """End a validation run and evaluate the validation rules (``overfit``, ``overtraining``,
        ``classifier_confusion``); returns :attr:`should_stop`.

        Give the whole run at once (``tw.validation(logits, y, loss=val_loss)``), or its batches
        one by one with :meth:`validation_batch` and then call ``tw.validation()``. The arguments
        are those of :meth:`validation_batch`.
        """
        if self._closed:
            return self.should_stop
        self.validation_batch(preds, target, loss=loss)
        losses, self._val_losses = self._val_losses, []
        val_loss = self.monitor.guard.call(VAL_LOSS, self._mean, losses) if losses else None
        self.driver.validation_end(val_loss, step=self.steps, epoch=None)
        return self.should_stop

    def _mean(self, values: list[Any]) -> torch.Tensor:
        device = self.driver.collector.device if self.driver.collector is not None else torch.device("cpu")
        return torch.stack([torch.as_tensor(v).detach().float().reshape(()).to(device) for v in values]).mean()

    @_closing_on_error
    def close(self) -> None:
        """Decide the last sample, remove every hook, close alerts and the run record, and print the
        end-of-run summary (rank 0). A second call does nothing."""
        if self._closed:
            return
        try:
            self.driver.process_pending()
        finally:
            self._teardown()

    def _teardown(self, error: BaseException | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        self.driver.detach()
        self.driver.finish(error=error)

    def __enter__(self) -> Tripwire:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:  # the loop's own exception is the one to see; the record says the run crashed
            self._teardown(error=exc)

    # state -------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Rule state, findings, the step counter and collector bookkeeping: plain Python types, to
        save beside the model and optimizer and resume with :meth:`load_state_dict`."""
        return {"monitor": self.monitor.state_dict(), "collector": self.driver.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (before the first :meth:`step`): patience counters, latches,
        findings and the schedule continue where the saved run left them."""
        self.monitor.load_state_dict(state.get("monitor", {}))
        self.driver.load_state_dict(state.get("collector", {}))
        self.steps = int(state.get("steps", 0))
        if self.steps > 0:
            self.driver.resume()
        self.driver.begin_step(self.steps)

    def checkpoint(self) -> dict[str, Any]:
        """What the ``checkpoint`` action saves: the model's and optimizer's state, the step, and
        :meth:`state_dict`."""
        states = [o.state_dict() for o in self.optimizers]
        return {"model": self.model.state_dict(), "optimizer": states[0] if len(states) == 1 else states,
                "step": self.steps, "tripwire": self.state_dict()}


class _LoopSink:
    """Carries out decisions in a plain loop: a flag the loop reads, a ``torch.save`` on rank 0."""

    checkpoint_suffix, checkpoint_root = ".pt", "."

    def __init__(self, loop: Tripwire) -> None:
        self.loop = loop

    def stop(self, finding: Finding) -> None:
        self.loop.should_stop = True

    def save_checkpoint(self, path: str) -> None:
        if self.loop.monitor.is_main:
            torch.save(self.loop.checkpoint(), path)

    def reduce_lr(self, factor: float, min_lr: float) -> tuple[float, float]:
        return self.loop.driver.lr.reduce(factor, min_lr)

    def rollback(self, step: int) -> tuple[int, int] | None:
        return self.loop.driver.roll_back(step)
