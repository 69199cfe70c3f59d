"""The Lightning callback logic behind :class:`tripwire.LightningTripwire`.

:mod:`tripwire.callbacks.lightning` makes the public class from this mixin and the ``Callback`` of
each Lightning package installed. Lightning calls hooks by name, and this mixin touches the
Trainer only through attributes that ``lightning.pytorch`` and ``pytorch_lightning`` share, so it
imports neither and works with whichever package's Trainer it is handed.

The schedule, the flush and the decision are the :class:`~tripwire.callbacks.torch.driver.TorchDriver`'s,
shared with the plain-loop adapter; this mixin maps Lightning's hooks onto it:

- step ``S`` = ``trainer.global_step`` when its batch starts (``on_train_batch_start``);
- gradients in ``on_before_optimizer_step`` (unscaled, pre-clip, once per real step), where the
  step's spike verdict is taken (``loss_spike``; its loss comes from ``on_before_backward``) and
  ``skip_step`` drops the gradients of a spiking step before Lightning's optimizer applies them;
- ``reduce_lr`` scales the rates of ``trainer.optimizers`` around each of their steps
  (:mod:`~tripwire.callbacks.torch.lr_scale`), so the LR schedulers keep their own values;
- the flush at the ``on_train_batch_end`` where that step's optimizer ran (on CUDA decided at the
  next one, at validation end or at train end, whichever comes first);
- every decision is agreed with ``trainer.strategy.reduce_boolean_decision(flag, all=False)`` on
  every rank, then carried out on every rank (checkpoint, stop, raise).

Failures of tripwire's own instrumentation never reach the training loop (see the driver); this
adapter guards reading the loss through it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tripwire.callbacks.torch.driver import TorchDriver
from tripwire.callbacks.torch.logger_findings import log_findings
from tripwire.callbacks.torch.ranks import Ranks
from tripwire.config import FROM_CONFIG, FromConfig
from tripwire.finding import Finding
from tripwire.monitor import Monitor
from tripwire.stats import CATALOGUE, Sample

log = logging.getLogger("tripwire")

# Per-feature and per-class counts are inputs to the data rules, not curves anyone reads in a
# logger (784 pixels x 5 statistics per sample would swamp it); they stay in the run record.
_NOT_LOGGED = frozenset(k for k, info in CATALOGUE.items() if info.per in ("feature", "class", "class pair"))


class TripwireCallbackImpl:
    """Checks training health with the configured rules; see :class:`tripwire.LightningTripwire`."""

    def __init__(self, config: str | dict | None = None, *, stop_on: Iterable[str] = (),
                 interval: int | None = None, log_dir: str | bool | FromConfig | None = FROM_CONFIG,
                 strict: bool | None = None,
                 batch_fn: Callable[[Any], Any] | None = None, name: str | None = None,
                 run_name: str | None = None) -> None:
        super().__init__()
        self.monitor = Monitor(config, stop_on=stop_on, interval=interval, log_dir=log_dir,
                               strict=strict, framework="torch", run_name=run_name,
                               remediations=("skip_step", "reduce_lr", "rollback"))
        self.name = name
        self.driver = TorchDriver(self.monitor, batch_fn=batch_fn)
        self._batches_since_val = 0  # training batches since the previous validation: epochs_since_val

    # public ----------------------------------------------------------------------------------------
    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, in order."""
        return self.monitor.findings

    @property
    def stopped_by(self) -> Finding | None:
        """The finding that stopped training, or None."""
        return self.monitor.stopped_by

    @property
    def collector(self) -> Any:
        """The :class:`~tripwire.callbacks.torch.collector.TorchCollector`, or None (not set up, or off)."""
        return self.driver.collector

    @property
    def state_key(self) -> str:
        """Checkpoint key; give two instances different ``name`` to use both in one Trainer."""
        if self.name is None:
            return type(self).__qualname__
        return f"{type(self).__qualname__}{{'name': {self.name!r}}}"

    def state_dict(self) -> dict[str, Any]:
        """Rule state, latches and findings, plus collector bookkeeping: plain Python types only."""
        return {"monitor": self.monitor.state_dict(), "collector": self.driver.state_dict(),
                "batches_since_val": self._batches_since_val}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume patience counters, latches and findings from a checkpoint."""
        self.monitor.load_state_dict(state_dict.get("monitor", {}))
        self._batches_since_val = int(state_dict.get("batches_since_val", 0))
        self.driver.load_state_dict(state_dict.get("collector", {}))

    # setup and teardown ----------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Register hooks (before ``torch.compile`` traces the model) when fitting."""
        if stage != "fit":
            return
        self.driver.connect(Ranks(trainer.world_size, trainer.is_global_zero,
                                  lambda flag, every: trainer.strategy.reduce_boolean_decision(flag, all=every)),
                            _TrainerSink(trainer, self.driver),
                            on_sample=lambda sample, findings: self._log_sample(trainer, sample, findings))
        self.driver.build(pl_module)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Allocate device buffers on the model's device; pick up modules made in ``configure_model``;
        under DDP, the ranks agree that each has a working collector."""
        self.driver.start(pl_module, pl_module.device)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Initial-weight statistics, once, when training starts from scratch."""
        self.driver.attach_optimizers(trainer.optimizers)
        self.driver.keep_states(lambda: _training_state(trainer, pl_module))
        if trainer.global_step > 0:  # resumed: `weight_unchanged` compares with the restored weights
            self.driver.resume()
        else:
            self.driver.initial_sample(step=trainer.global_step, epoch=trainer.current_epoch)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.driver.process_pending()

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.driver.process_pending()
        self.driver.finish()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """An exception leaves ``fit``: the run record says the run crashed (or a ``raise`` action stopped it)."""
        self.driver.finish(error=exception)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Remove hooks and close alerts and the run record."""
        if stage != "fit":
            return
        self.driver.detach()
        self.driver.finish()

    # training --------------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self.driver.begin_step(trainer.global_step, batch)

    def on_before_backward(self, trainer: Any, pl_module: Any, loss: Any) -> None:
        self.driver.add_step_loss(loss)  # judged for spikes before the update

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        self.driver.before_optimizer_step(optimizer, getattr(trainer.precision_plugin, "scaler", None))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.collector is not None:
            self._batches_since_val += 1
        self.driver.end_batch(lambda: self._train_loss(trainer, pl_module, outputs), epoch=trainer.current_epoch)

    def _train_loss(self, trainer: Any, pl_module: Any, outputs: Any) -> Any:
        key = self.monitor.config.metrics.train_loss
        if isinstance(outputs, Mapping):
            loss = outputs.get(key, outputs.get("loss"))
        else:
            loss = outputs
        if loss is None and key in trainer.callback_metrics:
            return trainer.callback_metrics[key]
        accumulate = getattr(trainer, "accumulate_grad_batches", 1)
        if loss is not None and accumulate > 1 and pl_module.automatic_optimization:
            loss = loss * accumulate  # Lightning hands on_train_batch_end the loss divided by it
        return loss

    # validation ------------------------------------------------------------------------------------
    def _validating(self, trainer: Any) -> bool:
        return self.driver.validating and not trainer.sanity_checking

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        if self._validating(trainer):
            self.collector.begin_validation_batch()

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if self._validating(trainer):
            self.collector.validation_batch(outputs, batch)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not self._validating(trainer):
            return
        val_loss = trainer.callback_metrics.get(self.monitor.config.metrics.val_loss)
        self.driver.validation_end(val_loss, step=trainer.global_step, epoch=trainer.current_epoch,
                                   complete=lambda sample: self._add_epochs_since_val(trainer, sample))

    def _add_epochs_since_val(self, trainer: Any, sample: Sample) -> None:
        """``epochs_since_val``: training batches since the previous validation over the batches of
        an epoch (``val_check_interval=0.5``: 0.5). Batches, not optimizer steps: they count the
        same under gradient accumulation and with several optimizers. Left out when the epoch
        length is unknown (an iterable dataset), which the rules read as one epoch."""
        batches, self._batches_since_val = self._batches_since_val, 0
        per_epoch = trainer.num_training_batches
        if self.monitor.wants("epochs_since_val") and math.isfinite(per_epoch) and per_epoch > 0:
            sample.add("epochs_since_val", batches / per_epoch)

    # logging -------------------------------------------------------------------------------------------
    def _log_sample(self, trainer: Any, sample: Sample, findings: list[Finding]) -> None:
        """A sample's statistics (unless ``log_stats: false``) and findings to the Trainer's loggers
        (rank 0; see :mod:`~tripwire.callbacks.torch.logger_findings`)."""
        if not trainer.is_global_zero:
            return
        if self.monitor.config.log_stats:
            self._log_stats(trainer, sample)
        log_findings(trainer.loggers, findings, len(self.monitor.findings), sample.step)

    def _log_stats(self, trainer: Any, sample: Sample) -> None:
        """Each statistic of a sample to the Trainer's loggers."""
        flat = {}
        for key, series in sample.stats.items():
            if key.split("[")[0] in _NOT_LOGGED:
                continue
            for subject, value in series.items():
                flat[f"tripwire/{key}" if subject is None else f"tripwire/{key}/{subject}"] = value
        for logger in trainer.loggers:
            try:
                logger.log_metrics(flat, step=sample.step)
            except Exception as exc:  # noqa: BLE001 - a logger failure must not stop training
                log.warning("tripwire: could not log statistics to %s: %s", type(logger).__name__, exc)


def _training_state(trainer: Any, pl_module: Any) -> Any:
    """What ``rollback`` keeps of a Lightning fit: the module, ``trainer.optimizers``, the AMP scaler."""
    from tripwire.callbacks.torch.training_state import TrainingState  # imports torch: only when it is kept

    return TrainingState(pl_module, trainer.optimizers, lambda: getattr(trainer.precision_plugin, "scaler", None))


class _TrainerSink:
    """Carries out decisions on a Lightning ``Trainer`` (every rank: its checkpoint is a collective)."""

    checkpoint_suffix = ".ckpt"

    def __init__(self, trainer: Any, driver: TorchDriver) -> None:
        self.trainer, self.driver = trainer, driver
        self.checkpoint_root = trainer.default_root_dir

    def stop(self, finding: Finding) -> None:
        self.trainer.should_stop = True

    def save_checkpoint(self, path: str) -> None:
        self.trainer.save_checkpoint(path)

    def reduce_lr(self, factor: float, min_lr: float) -> tuple[float, float]:
        return self.driver.lr.reduce(factor, min_lr)

    def rollback(self, step: int) -> tuple[int, int] | None:
        return self.driver.roll_back(step)
