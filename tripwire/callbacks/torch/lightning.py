"""The Lightning callback logic behind :class:`tripwire.LightningTripwire`.

:mod:`tripwire.callbacks.lightning` makes the public class from this mixin and the ``Callback`` of
each Lightning package installed. Lightning calls hooks by name, and this mixin touches the
Trainer only through attributes that ``lightning.pytorch`` and ``pytorch_lightning`` share, so it
imports neither and works with whichever package's Trainer it is handed.

Schedule (every rank follows it, so DDP ranks decide at the same points):

- step ``S`` = ``trainer.global_step`` when its batch starts is sampled when
  :meth:`Monitor.due <tripwire.monitor.Monitor.due>` says so (under gradient accumulation every
  micro-batch of that step is sampled);
- gradients in ``on_before_optimizer_step`` (unscaled, pre-clip, once per real step);
- the flush at the ``on_train_batch_end`` where that step's optimizer ran: one packed vector,
  one collective, one host copy. On CPU the sample is evaluated right away; on CUDA the copy
  is left in flight and evaluated at the next ``on_train_batch_end`` (or at validation end /
  train end, whichever comes first), so the GPU never waits for the host: rules then decide
  one batch later;
- every decision is agreed with ``trainer.strategy.reduce_boolean_decision(flag, all=False)``
  on every rank (:meth:`Monitor.agreed <tripwire.monitor.Monitor.agreed>`), then carried out on
  every rank by :meth:`Monitor.execute <tripwire.monitor.Monitor.execute>` (checkpoint, stop, raise).

Failures of tripwire's own instrumentation never reach the training loop: the collector runs each
part under ``monitor.guard`` (:mod:`tripwire.callbacks.torch.parts`) and this adapter guards
building it and reading the loss. A failure that would put one rank out of step with the others
(a part whose statistics are gathered, or the flush itself) switches the collector off on every
rank at the decision of that flush: see :meth:`TripwireCallbackImpl._agree`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tripwire.callbacks.torch.parts import COLLECTOR, FLUSH, GRADIENTS, LOSS
from tripwire.config import FROM_CONFIG, FromConfig
from tripwire.errors import RuleError
from tripwire.finding import Finding
from tripwire.monitor import Decision, Monitor
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
                               strict=strict, framework="torch", run_name=run_name)
        self.batch_fn = batch_fn
        self.name = name
        self.collector: Any = None
        self._pending: Any = None
        self._defer = False
        self._sampled = False
        self._stepped = False
        self._batch_step = 0
        self._batches_since_val = 0  # training batches since the previous validation: epochs_since_val
        self._collector_state: dict[str, Any] = {}

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
    def state_key(self) -> str:
        """Checkpoint key; give two instances different ``name`` to use both in one Trainer."""
        if self.name is None:
            return type(self).__qualname__
        return f"{type(self).__qualname__}{{'name': {self.name!r}}}"

    def state_dict(self) -> dict[str, Any]:
        """Rule state, latches and findings, plus collector bookkeeping: plain Python types only."""
        data = self.collector.data if self.collector is not None else None
        collector = ({"label_capacity": data.capacity, "classes_seen": data.classes_seen} if data is not None
                     else dict(self._collector_state))
        return {"monitor": self.monitor.state_dict(), "collector": collector,
                "batches_since_val": self._batches_since_val}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume patience counters, latches and findings from a checkpoint."""
        self.monitor.load_state_dict(state_dict.get("monitor", {}))
        self._batches_since_val = int(state_dict.get("batches_since_val", 0))
        self._collector_state = dict(state_dict.get("collector", {}))
        self._restore_collector_state()

    def _restore_collector_state(self) -> None:
        if self.collector is not None and self._collector_state:
            data, state = self.collector.data, self._collector_state
            data.capacity = int(state.get("label_capacity", data.capacity))
            data.classes_seen = int(state.get("classes_seen", 0))

    # setup and teardown ----------------------------------------------------------------------------
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Register hooks (before ``torch.compile`` traces the model) when fitting."""
        if stage != "fit":
            return
        self.monitor.is_main = trainer.is_global_zero
        self.collector = self.monitor.guard.call(COLLECTOR, self._build_collector, pl_module)
        self._restore_collector_state()

    def _build_collector(self, pl_module: Any) -> Any:
        from tripwire.callbacks.torch.collector import TorchCollector

        collector = TorchCollector(self.monitor.needs(), batch_fn=self.batch_fn, guard=self.monitor.guard)
        collector.attach(pl_module)
        return collector

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Allocate device buffers on the model's device; pick up modules made in ``configure_model``.

        Under DDP the ranks then agree that each has a working collector (one boolean decision per
        fit): a part that failed while setting up on one rank only switches it off on every rank.
        """
        if self.collector is not None:
            self.monitor.guard.call(COLLECTOR, self._prepare, trainer, pl_module)
        healthy = self.collector is not None and not self._collector_broken(trainer)
        if trainer.world_size > 1:
            healthy = trainer.strategy.reduce_boolean_decision(healthy, all=True)
        if not healthy:
            self._switch_off_collector(trainer)

    def _prepare(self, trainer: Any, pl_module: Any) -> None:
        from tripwire.callbacks.torch.packing import torch_distributed_gather

        if not self.collector.attached_to(pl_module):
            self.collector.attach(pl_module)
        self.collector.gather = torch_distributed_gather() if trainer.world_size > 1 else None
        self.collector.allocate(pl_module.device)
        self._defer = pl_module.device.type == "cuda"

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Initial-weight statistics, once, when training starts from scratch."""
        if self.collector is None:
            return
        if trainer.global_step > 0:  # resumed: `weight_unchanged` compares with the restored weights
            if self.collector.params is not None:  # the snapshot is the gradient statistics' part
                self.monitor.guard.call(GRADIENTS, self.collector.params.remember_weights)
            self.collector.shapes_sent()  # the rules' restored state holds them already
            return
        flush = self.collector.init_flush(step=trainer.global_step, epoch=trainer.current_epoch)
        if flush is not None:
            self._decide(trainer, flush.sample())

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._process_pending(trainer)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self._process_pending(trainer)
        self._finish(trainer)

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._finish(trainer)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Remove hooks and close alerts and the run record."""
        if stage != "fit":
            return
        if self.collector is not None:
            self.collector.detach()
        self._finish(trainer)

    def _finish(self, trainer: Any) -> None:
        self._pending = None
        self.monitor.close()  # prints the end-of-run summary on rank 0; a second call does nothing

    # training --------------------------------------------------------------------------------------
    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.collector is None:
            return
        self._batch_step = trainer.global_step
        self._sampled = self.monitor.due(self._batch_step)
        self._stepped = False
        self.collector.begin_batch(batch, self._sampled)

    def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
        if self.collector is None:
            return
        self._stepped = True
        self.collector.before_optimizer_step(optimizer, getattr(trainer.precision_plugin, "scaler", None))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.collector is None:
            return
        self._batches_since_val += 1
        self._process_pending(trainer)
        if self.collector is None:  # switched off by that decision
            return
        self.collector.add_loss(self.monitor.guard.call(LOSS, self._train_loss, trainer, pl_module, outputs))
        if not (self._sampled and self._stepped):
            self.collector.end_batch()
            return
        self._sampled = False
        flush = self.collector.flush(step=self._batch_step, epoch=trainer.current_epoch)
        if self._defer:
            self._pending = flush
        else:
            self._decide(trainer, flush.sample())

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

    def _process_pending(self, trainer: Any) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            self._decide(trainer, pending.sample())

    # validation ------------------------------------------------------------------------------------
    def _validating(self, trainer: Any) -> bool:
        return self.collector is not None and self.collector.validation_wanted and not trainer.sanity_checking

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
        self._process_pending(trainer)
        if self.collector is None:  # switched off by that decision
            return
        val_loss = trainer.callback_metrics.get(self.monitor.config.metrics.val_loss)
        flush = self.collector.end_validation(val_loss, step=trainer.global_step, epoch=trainer.current_epoch)
        sample = flush.sample()
        self._add_epochs_since_val(trainer, sample)
        self._decide(trainer, sample)

    def _add_epochs_since_val(self, trainer: Any, sample: Sample) -> None:
        """``epochs_since_val``: training batches since the previous validation over the batches of
        an epoch (``val_check_interval=0.5``: 0.5). Batches, not optimizer steps: they count the
        same under gradient accumulation and with several optimizers. Left out when the epoch
        length is unknown (an iterable dataset), which the rules read as one epoch."""
        batches, self._batches_since_val = self._batches_since_val, 0
        per_epoch = trainer.num_training_batches
        if self.monitor.wants("epochs_since_val") and math.isfinite(per_epoch) and per_epoch > 0:
            sample.add("epochs_since_val", batches / per_epoch)

    # acting ----------------------------------------------------------------------------------------
    def _decide(self, trainer: Any, sample: Sample) -> None:
        """Evaluate a sample and act; every rank calls this at the same points with the same sample."""
        agree = trainer.strategy.reduce_boolean_decision
        try:
            decision, failed = self.monitor.process(sample), None
        except RuleError as exc:  # strict=True
            decision, failed = Decision(step=sample.step, epoch=sample.epoch), exc
        # A rank-local failure (a rule over a rank-local statistic) must end every rank, or the
        # others would wait in their next collective until the process group times out.
        if self.monitor.engine.strict and agree(failed is not None, all=False):
            raise failed or RuleError("a rule failed on another rank (strict=True); see that rank's error")
        if self.monitor.config.log_stats and trainer.is_global_zero and sample.stats:
            self._log_stats(trainer, sample)
        stop, switch_off = self._agree(trainer, decision.stop is not None, self._collector_broken(trainer))
        if switch_off:
            self._switch_off_collector(trainer)
        decision = self.monitor.agreed(decision, lambda flag: agree(flag, all=False), stop=stop)
        self.monitor.execute(decision, _TrainerSink(trainer))

    @staticmethod
    def _agree(trainer: Any, stop: bool, broken: bool) -> tuple[bool, bool]:
        """(stop, switch the collector off), each true on every rank when it is true on any.

        This costs no collective beyond the stop decision that every flush makes anyway: that one
        boolean decision asks "stop or broken?", and only when some rank says yes (a rule fired, a
        part failed: rare) do one or two more tell the two apart. Every rank takes the same branch.
        """
        agree = trainer.strategy.reduce_boolean_decision
        if not agree(stop or broken, all=False):
            return False, False
        if not agree(broken, all=False):
            return True, False
        return agree(stop, all=False), True

    def _collector_broken(self, trainer: Any) -> bool:
        """Whether this rank's collector must go: building, preparing or flushing it failed, or (DDP)
        a part failed that would put this rank's gathered statistics out of step with the others'."""
        guard = self.monitor.guard
        if not (guard.ok(COLLECTOR) and guard.ok(FLUSH)):
            return True
        return trainer.world_size > 1 and self.collector is not None and self.collector.failed_shared

    def _switch_off_collector(self, trainer: Any) -> None:
        """No more statistics in this run: hooks removed, nothing collected or gathered. Under DDP
        every rank does this at the same decision, so the ranks keep doing the same collectives."""
        where = "here" if self._collector_broken(trainer) else "on another rank"
        collector, self.collector, self._pending = self.collector, None, None
        if collector is not None:
            collector.detach()
        if trainer.world_size > 1:
            self.monitor.guard.fail(COLLECTOR, RuntimeError(
                f"a part of it failed {where}; it is off on every rank so that the ranks stay in step"))

    def _log_stats(self, trainer: Any, sample: Sample) -> None:
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


class _TrainerSink:
    """Carries out decisions on a Lightning ``Trainer`` (every rank: its checkpoint is a collective)."""

    checkpoint_suffix = ".ckpt"

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.checkpoint_root = trainer.default_root_dir

    def stop(self, finding: Finding) -> None:
        self.trainer.should_stop = True

    def save_checkpoint(self, path: str) -> None:
        self.trainer.save_checkpoint(path)
