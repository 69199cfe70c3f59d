"""`TripwireCallback`: tripwire as a Hugging Face ``transformers.Trainer`` callback.

The Trainer (``Trainer._inner_training_loop``, transformers 5.x) calls, per optimizer step:
``on_step_begin`` (before the first micro-batch), the forward and backward of each micro-batch,
``clip_grad_norm_`` (through Accelerate, which first unscales fp16 gradients; with
``max_grad_norm=0`` it still calls it, with an infinite norm, to measure them),
``on_pre_optimizer_step``, ``optimizer.step()``, ``on_optimizer_step``, the scheduler step,
``zero_grad``, ``global_step += 1``, ``on_step_end``, then logging, evaluation and saving.
Callbacks get the model and the optimizer, never a batch, a loss or the predictions. So:

- **schedule**: step ``S`` = ``state.global_step`` at ``on_step_begin`` (the steps completed
  before it: the 0-based index every adapter uses) is sampled when :meth:`Monitor.due
  <tripwire.monitor.Monitor.due>` says so; under gradient accumulation each of its micro-batches is;
- **gradients** at ``on_pre_optimizer_step``: final, DDP-averaged, unscaled, **and clipped** to
  ``max_grad_norm`` (default 1.0), since no callback runs between the backward pass and clipping.
  Clipping scales every gradient by one factor, and only down, so per-layer ratios, NaN/Inf and
  vanishing gradients read as without it; but ``grad_global_norm`` is at most ``max_grad_norm``,
  so ``exploding_gradient``'s absolute ``max_norm`` cannot fire (its jump against the running
  median still can, when norms usually sit below the clip). The Trainer logs the pre-clip norm
  as ``grad_norm``; ``max_grad_norm=0`` gives tripwire pre-clip gradients;
- **weights and updates**: snapshot at ``on_pre_optimizer_step``, compared at ``on_optimizer_step``,
  where the sample of a sampled step is flushed (one packed vector, one host copy);
- **activations**: forward hooks on the model, attached at ``on_train_begin`` and removed at
  ``on_train_end``, active during the training forwards of sampled steps only;
- **data**: a forward pre-hook on the model reads the keyword arguments the Trainer calls it with
  (``input_ids``, ``labels``, ...: :func:`~tripwire.callbacks.torch.batch.split_batch`, or
  ``batch_fn``) on the training forwards of sampled steps;
- **loss**: the ``loss`` the model returns on each training forward, kept on the device (the
  Trainer's logged loss is read on the host only every ``logging_steps`` and, with
  ``logging_nan_inf_filter``, hides a NaN), combined over the step's micro-batches the way the
  Trainer combines them into the loss it backpropagates and logs: when it gave the model
  ``num_items_in_batch`` it takes the model's loss as normalised over the whole accumulated batch
  (and, with ``average_tokens_across_devices``, over every rank's), so the micro-batch losses are
  summed (and multiplied by the world size); otherwise they are averaged. A model that accepts
  ``**kwargs`` but ignores ``num_items_in_batch`` (``BertForSequenceClassification`` in
  transformers 5.x) then has a training loss, in the Trainer's logs and here, of accumulation
  steps x ranks times its mean, unlike ``eval_loss``; ``model.accepts_loss_kwargs = False``
  before building the Trainer fixes both (and the gradients' scale). When the model returns no
  loss (a custom ``compute_loss``, ``compute_loss_func``, label smoothing), the ``loss`` of the
  Trainer's logs (``on_log``, every ``logging_steps``) goes into the next sample instead; the
  Trainer then also keeps the labels from the model, so the label statistics and the confusion
  matrix get none;
- **validation**: ``eval_loss`` from ``on_evaluate``'s metrics (or the config's
  ``metrics.val_loss`` key when the metrics hold it), ``epochs_since_val`` from ``state.epoch``,
  and the confusion matrix from the evaluation forwards (model in eval mode): logits from the
  model's output, labels from its ``labels`` argument. Only evaluations during ``train()`` count.

Acting: a ``stop`` sets ``control.should_training_stop``, so the Trainer ends after the current
step (``state.global_step`` is then the stopping step + 1) on every rank: under DDP (Accelerate)
the ranks reduce their statistics with one collective per flush and agree on each decision with
one ``torch.distributed`` all-reduce of a flag. ``checkpoint`` saves the model with
``save_pretrained`` (main process); ``raise`` raises :class:`~tripwire.errors.RuleTriggered` out
of ``trainer.train()``. The remediations go through the shared torch driver as in the plain loop:
``skip_step`` drops the gradients at ``on_pre_optimizer_step``, where the step's loss (kept from the
model's outputs) and its gradient norm are judged; ``reduce_lr`` scales the rates around each step of
the Trainer's optimizer, under its scheduler; ``rollback`` keeps the model, the optimizer and
Accelerate's grad scaler. Under DeepSpeed none of them, and under FSDP only ``reduce_lr``, can act on
the sharded state: the others are refused when training starts.

Every finding is also appended to ``state.log_history`` as
``{"tripwire": finding.to_dict(), "step": finding.step, "epoch": state.epoch}``, so it is saved
with the Trainer's state and checkpoints. The statistics themselves go to the run record (the
Trainer gives callbacks no way to log through its loggers).

Not covered: resuming rule state from a Trainer checkpoint (a resumed run starts the rules
afresh: no initial-weight sample, fresh patience counters). ``torch_compile=True`` is untested:
the hooks are attached after Accelerate compiled the model.

Example:
    >>> import transformers
    >>> from tripwire.transformers import TripwireCallback
    >>> cb = TripwireCallback({"interval": 5, "rules": {"nonfinite": {}}}, log_dir=False)
    >>> isinstance(cb, transformers.TrainerCallback), cb.monitor.interval, cb.findings
    (True, 5, [])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from tripwire.callbacks.missing_framework import missing_framework

try:
    from transformers import TrainerCallback
except ModuleNotFoundError as exc:
    raise missing_framework("tripwire.transformers.TripwireCallback", exc) from exc

import torch

from tripwire.arguments import shared_arguments
from tripwire.callbacks.torch.driver import TorchDriver
from tripwire.callbacks.torch.parts import COLLECTOR, LOSS
from tripwire.callbacks.torch.ranks import torch_distributed_ranks
from tripwire.callbacks.torch.training_state import TrainingState
from tripwire.callbacks.torch.unwrap import inner_optimizer
from tripwire.config import FROM_CONFIG, FromConfig
from tripwire.finding import Finding
from tripwire.monitor import Monitor
from tripwire.stats import Sample

__all__ = ["TripwireCallback"]

#: the key of the validation loss in the metrics of ``Trainer.evaluate``
EVAL_LOSS = "eval_loss"
#: the key under which a finding goes into ``state.log_history``
LOG_KEY = "tripwire"
#: the remediation actions this callback carries out (none of them under DeepSpeed; only
#: ``reduce_lr`` under FSDP)
REMEDIATIONS = ("skip_step", "reduce_lr", "rollback")


@shared_arguments
class TripwireCallback(TrainerCallback):
    """Catch broken training runs while a ``transformers.Trainer`` trains.

    Every ``interval`` optimizer steps it computes, on the device and only for the enabled rules,
    the statistics they need (gradients, weights, activations, losses, data), reads them back in
    one host copy, evaluates the rules, and acts: alerts, stops every rank together, saves the
    model, or raises :class:`tripwire.RuleTriggered`. Where each statistic is read relative to the
    Trainer's loop (gradients: after clipping): :mod:`tripwire.callbacks.torch.hf_trainer`.

    Args:
        config: YAML path or text, a dict, a :class:`tripwire.Config`, or None for the default
            rule set (tuned to stay silent on healthy runs).
        {shared arguments}
        batch_fn: ``inputs -> (inputs, labels)``, given the keyword arguments of the model's
            forward, for models whose inputs are not ``input_ids``/``pixel_values``/... and labels not
            ``labels``.

    Attributes:
        findings: every :class:`tripwire.Finding` so far.
        stopped_by: the finding that stopped training, or None.
        monitor: the :class:`tripwire.Monitor` (engine, alerts, run record).
    """

    def __init__(self, config: Any = None, *, stop_on: Iterable[str] = (), interval: int | None = None,
                 log_dir: str | bool | FromConfig | None = FROM_CONFIG, strict: bool | None = None,
                 run_name: str | None = None, batch_fn: Callable[[Any], Any] | None = None) -> None:
        self.monitor = Monitor(config, stop_on=stop_on, interval=interval, log_dir=log_dir, strict=strict,
                               framework="torch", run_name=run_name, remediations=REMEDIATIONS)
        self.driver = TorchDriver(self.monitor, batch_fn=batch_fn)
        self._sink = _ControlSink(self.driver)
        self._handles: list[Any] = []
        self._training = False
        self._losses: list[torch.Tensor] = []  # the model's losses in the step in progress
        self._step_total: torch.Tensor | None = None  # their combination, once the gradients are final
        self._normalised = False  # whether they were normalised over the whole accumulated batch
        self._model_loss = False  # whether the model returned a loss in a training forward of this run
        self._loss_factor = 1.0
        self._eval_inputs: Any = None
        self._last_eval_epoch = 0.0
        self._published = 0

    @property
    def findings(self) -> list[Finding]:
        """Every finding so far, in order."""
        return self.monitor.findings

    @property
    def stopped_by(self) -> Finding | None:
        """The finding that stopped training, or None."""
        return self.monitor.stopped_by

    # setup and teardown ----------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        """Hook the model, agree with the other ranks that every collector works, and take the
        initial-weight sample (a run resumed from a checkpoint takes none). A remediation the
        Trainer's setup rules out (a sharded state) is refused here, before anything is hooked."""
        sharding = _sharding(args)
        if sharding:
            self.monitor.check_remediations(("reduce_lr",) if sharding == "FSDP" else (),
                                            why=f"under {sharding} (its training state is sharded)")
        self._training, self._published, self._model_loss = True, len(self.findings), False
        self._last_eval_epoch = float(state.epoch or 0.0)
        # the model's loss is normalised over every rank's tokens when the Trainer averages them
        self._loss_factor = float(args.world_size) if getattr(args, "average_tokens_across_devices", False) else 1.0
        device = _device_of(model, args)
        self._sink.connect(control, model, args.output_dir, is_main=state.is_world_process_zero)
        self.driver.connect(torch_distributed_ranks(device), self._sink)
        optimizer = kwargs.get("optimizer")
        if optimizer is not None and model is not None:
            inner = inner_optimizer(optimizer)
            self.driver.attach_optimizers([inner])
            self.driver.keep_states(lambda: TrainingState(model, [inner], lambda: getattr(optimizer, "scaler", None)))
        self.driver.build(model)
        self.driver.start(model, device)
        if self.driver.collector is not None:
            self.monitor.guard.call(COLLECTOR, self._hook, model)
        if state.global_step > 0:
            self.driver.resume()
        else:
            self._acting(state, control, self.driver.initial_sample, step=0, epoch=0)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Decide a sample still in flight, remove every hook, close alerts and the run record."""
        if self._training:
            self._acting(state, control, self.driver.process_pending)
            self._finish()

    def _finish(self, error: BaseException | None = None) -> None:
        self._training = False
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        self.driver.detach()
        self.driver.finish(error=error)

    # training --------------------------------------------------------------------------------------
    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._training:
            self._losses, self._normalised, self._step_total = [], False, None
            self.driver.begin_step(state.global_step)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                              **kwargs: Any) -> None:
        """The gradients are final: the step's loss joins its spike verdict, before the update (so
        ``skip_step`` can act on a loss spike too), and the driver sees the gradients."""
        if not self._training or optimizer is None:
            return
        self._step_total = self.monitor.guard.call(LOSS, self._combined_loss)
        if self._step_total is not None:
            self.driver.add_step_loss(self._step_total)
        # Accelerate's wrapper holds the loss scaler, whose found-inf flags are per torch optimizer
        self.driver.before_optimizer_step(inner_optimizer(optimizer), getattr(optimizer, "scaler", None))

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """The step's optimizer ran: keep its loss, and flush and decide when it is sampled."""
        if self._training:
            self._acting(state, control, self.driver.end_batch, self._step_loss, epoch=_epoch(state))

    def _step_loss(self) -> torch.Tensor | None:
        if self._step_total is not None:
            total, self._step_total, self._losses = self._step_total, None, []
            return total
        return self._combined_loss()

    def _combined_loss(self) -> torch.Tensor | None:
        """The step's loss, combined from its micro-batches as the Trainer combines them (the list is
        kept: :meth:`_step_loss` empties it)."""
        losses = self._losses
        if not losses:
            return None
        stacked = torch.stack([loss.float().reshape(()) for loss in losses])
        return stacked.sum() * self._loss_factor if self._normalised else stacked.mean()

    def on_log(self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        """The Trainer's logged loss, for models that return none of their own."""
        key = self.monitor.config.metrics.train_loss
        collector = self.driver.collector
        if self._training and not self._model_loss and collector is not None and logs and key in logs:
            collector.add_loss(self.monitor.guard.call(LOSS, torch.tensor, float(logs[key])))

    # validation ------------------------------------------------------------------------------------
    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        """One validation sample: the evaluation's loss and the confusion matrix of its forwards."""
        if not self._training:
            return
        metrics = metrics or {}
        val_loss = metrics.get(self.monitor.config.metrics.val_loss, metrics.get(EVAL_LOSS))
        self._acting(state, control, self.driver.validation_end, val_loss, step=state.global_step,
                     epoch=_epoch(state), complete=lambda sample: self._add_epochs_since_val(state, sample))

    def _add_epochs_since_val(self, state: Any, sample: Sample) -> None:
        epoch = float(state.epoch or 0.0)
        since, self._last_eval_epoch = epoch - self._last_eval_epoch, epoch
        if self.monitor.wants("epochs_since_val"):
            sample.add("epochs_since_val", since)

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any) -> None:
        """A ``predict`` call is no validation: its forwards' counts are dropped."""
        collector = self.driver.collector
        if collector is not None and collector.confusion is not None:
            collector.confusion.pieces()

    # model hooks -----------------------------------------------------------------------------------
    def _hook(self, model: torch.nn.Module) -> None:
        # before the collector's own pre-hooks (the confusion probe's), after its forward hooks
        self._handles = [model.register_forward_pre_hook(self._before_forward, with_kwargs=True, prepend=True),
                         model.register_forward_hook(self._after_forward, with_kwargs=True)]

    def _before_forward(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        collector = self.driver.collector
        if collector is None:
            return
        inputs = kwargs or args
        if module.training:
            if self.driver.sampled or collector.counting_labels:
                self.driver.add_batch(inputs)  # guarded by the collector (data statistics)
        elif collector.confusion is not None:
            self._eval_inputs = inputs
            collector.begin_validation_batch()

    def _after_forward(self, module: torch.nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        collector = self.driver.collector
        if collector is None:
            return
        if module.training:
            self.monitor.guard.call(LOSS, self._keep_loss, kwargs, output)
        elif collector.confusion is not None and collector.confusion.capturing:
            inputs, self._eval_inputs = self._eval_inputs, None
            collector.validation_batch(None, inputs)  # guarded by the collector (confusion matrix)

    def _keep_loss(self, kwargs: dict, output: Any) -> None:
        loss = output.get("loss") if isinstance(output, Mapping) else getattr(output, "loss", None)
        if isinstance(loss, torch.Tensor):
            self._model_loss = True
            self._normalised = kwargs.get("num_items_in_batch") is not None
            self._losses.append(loss.detach().clone())  # compute_loss may scale it in place afterwards

    # acting ----------------------------------------------------------------------------------------
    def _acting(self, state: Any, control: Any, call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``call`` a driver method that may decide: with this event's ``control`` in the sink; its
        findings then go into the log history. A ``raise`` action leaves ``trainer.train()`` from
        here, so the hooks and the run record are closed on the way out."""
        self._sink.control = control
        try:
            call(*args, **kwargs)
        except BaseException as exc:
            self._publish(state)
            self._finish(error=exc)
            raise
        self._publish(state)

    def _publish(self, state: Any) -> None:
        new, self._published = self.findings[self._published:], len(self.findings)
        for finding in new:
            state.log_history.append({LOG_KEY: finding.to_dict(), "step": finding.step, "epoch": state.epoch})


def _epoch(state: Any) -> int:
    return int(state.epoch or 0)


def _device_of(model: Any, args: Any) -> torch.device:
    parameter = next(iter(model.parameters()), None) if model is not None else None
    return parameter.device if parameter is not None else torch.device(args.device)


def _sharding(args: Any) -> str | None:
    """``"DeepSpeed"`` or ``"FSDP"`` when the Trainer shards the training state, else None."""
    if getattr(args, "deepspeed", None):
        return "DeepSpeed"
    if getattr(args, "fsdp", None):
        return "FSDP"
    return None


class _ControlSink:
    """Carries out decisions through the Trainer's ``control`` (every rank) and the model (main
    process); the remediations through the driver (every rank)."""

    checkpoint_suffix = ""  # save_pretrained writes a directory

    def __init__(self, driver: TorchDriver) -> None:
        self.driver = driver
        self.control: Any = None
        self.model: Any = None
        self.checkpoint_root = "."
        self.is_main = True

    def connect(self, control: Any, model: Any, output_dir: str, *, is_main: bool) -> None:
        self.control, self.model, self.checkpoint_root, self.is_main = control, model, output_dir or ".", is_main

    def stop(self, finding: Finding) -> None:
        self.control.should_training_stop = True

    def reduce_lr(self, factor: float, min_lr: float) -> tuple[float, float]:
        return self.driver.lr.reduce(factor, min_lr)

    def rollback(self, step: int) -> tuple[int, int] | None:
        return self.driver.roll_back(step)

    def save_checkpoint(self, path: str) -> None:
        if not self.is_main:
            return
        if hasattr(self.model, "save_pretrained"):
            self.model.save_pretrained(path)
        else:
            torch.save(self.model.state_dict(), path)
