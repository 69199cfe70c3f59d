"""`KerasTripwire`: tripwire rules for Keras 3 ``model.fit``.

Example:
    >>> import keras, numpy as np
    >>> from tripwire import KerasTripwire
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
    ...                           keras.layers.Dense(1)])
    >>> model.compile(keras.optimizers.SGD(1e9), "mse")   # a learning rate that blows up
    >>> tw = KerasTripwire({"rules": {"nonfinite": {}}, "interval": 2}, log_dir=False)
    >>> x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    >>> _ = model.fit(x, x[:, :1], batch_size=8, epochs=3, verbose=0, callbacks=[tw])
    tripwire: 1 finding (1 error); training stopped at step ... by nonfinite
    ...
    >>> tw.stopped_by.rule
    'nonfinite'
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterable
from typing import Any

from tripwire.callbacks.missing_framework import missing_framework

try:
    import keras
except ModuleNotFoundError as exc:
    raise missing_framework("KerasTripwire", exc) from exc

from tripwire.arguments import shared_arguments
from tripwire.callbacks.keras import data as keras_data
from tripwire.callbacks.keras import learning_rate as keras_lr
from tripwire.callbacks.keras import optimizer as keras_optimizer
from tripwire.callbacks.keras.buffer import to_numpy
from tripwire.callbacks.keras.collector import SETUP, SPIKES, Collector
from tripwire.callbacks.keras.init import INIT_STATS, init_stats
from tripwire.callbacks.keras.jax import JaxState
from tripwire.callbacks.keras.tensorboard import FindingWriter
from tripwire.callbacks.keras.training_state import KerasTrainingState
from tripwire.callbacks.no_gradient import NoGradientNotice
from tripwire.config import FROM_CONFIG, FromConfig
from tripwire.finding import Finding
from tripwire.monitor import Decision, Monitor
from tripwire.rollback import PART as ROLLBACK
from tripwire.rollback import StateKeeper, keeper_for
from tripwire.stats import INPUT_STATS, Sample

log = logging.getLogger("tripwire")

TENSORBOARD = "writing findings to TensorBoard"
_DATA_STATS = {"label_count", "token_count", "token_total", *INPUT_STATS}


def _cleaning_up(hook):
    """A callback hook that removes tripwire's hooks from the model before an exception leaves it
    (``strict=True``, a ``raise`` action): ``fit`` ends, and the model is the user's own again."""
    @functools.wraps(hook)
    def guarded(self, *args, **kwargs):
        try:
            return hook(self, *args, **kwargs)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the original exception is the one to see
                self._teardown(error=exc)
            raise

    return guarded


@shared_arguments
class KerasTripwire(keras.callbacks.Callback):
    """Watch a ``model.fit`` run with tripwire rules; stop, alert, checkpoint or raise on findings.

    Gradient, weight, activation and data statistics are computed inside the compiled train step
    on every ``interval``-th optimizer step and read on the host once per ``interval`` steps
    (see :mod:`tripwire.callbacks.keras.collector`); losses come from the logs. ``loss_spike`` is
    judged at every optimizer step inside the train step, and its ``skip_step`` action leaves a
    spiking step's update out, optimizer state included (:mod:`tripwire.callbacks.keras.spike`);
    ``rollback`` restores a kept state (:mod:`tripwire.callbacks.keras.training_state`).
    Everything the callback installs on the model and optimizer is removed when training ends, so
    ``model.save`` / ``keras.models.load_model`` behave as without it.

    Backends: TensorFlow (graph and ``jit_compile=True``, ``tf.distribute.MirroredStrategy``:
    statistics combined over replicas), JAX (jitted) and torch are tested. On JAX the callback
    reads the trainer's state on flush steps only (never ``Callback.model``, which syncs every
    variable on each read).
    Keras keeps no callback state in checkpoints: to resume, save :meth:`state_dict` (plain JSON)
    beside the model and :meth:`load_state_dict` it into the new callback.

    The callback never breaks training (:mod:`tripwire.failopen`): when a part of its own
    instrumentation raises (a hook, an activation probe, the statistics in the compiled step, a
    host read), that part is switched off with one warning naming it, and ``fit`` goes on as
    it would without tripwire; the losses and the rules fed by them keep working. When the
    in-graph statistics fail, every hook is removed so the model runs its own functions.
    With ``strict=True`` the exception reaches the caller instead.

    Args:
        config: path of a YAML file, YAML text, a dict, a :class:`tripwire.Config`, or None for the
            default rule set.
        {shared arguments}
        train_data: ``(x, y)`` arrays or an iterable of ``(x, y)`` batches to compute the data
            statistics (class counts, input scale, token share) from, once, before training.
            Without it they come from the batches ``fit`` trains on (sampled steps).
        validation_data: ``(x, y)`` arrays or batches to compute the confusion matrix from at the
            end of each epoch (with ``model.predict``). Without it the confusion matrix comes from
            the validation run of ``fit``, when there is one.
        tensorboard: the ``keras.callbacks.TensorBoard`` of the same ``fit``, or its ``log_dir``: the
            findings go into its training run as text, with their count as the scalar
            ``tripwire/findings`` (see :mod:`tripwire.callbacks.keras.tensorboard`; needs TensorFlow).

    Attributes:
        findings: every finding so far, in order.
        stopped_by: the finding that stopped training, or None.
        monitor: the :class:`tripwire.Monitor` behind the callback.
    """

    def __init__(self, config: Any = None, *, stop_on: Iterable[str] = (), interval: int | None = None,
                 log_dir: str | bool | FromConfig | None = FROM_CONFIG, strict: bool | None = None,
                 train_data=None, validation_data=None, run_name: str | None = None, tensorboard: Any = None,
                 ) -> None:
        super().__init__()
        self.monitor = Monitor(config, stop_on=stop_on, interval=interval, log_dir=log_dir, strict=strict,
                               framework="keras", run_name=run_name, remediations=remediations())
        self.train_data = train_data
        self.validation_data = validation_data
        self.tensorboard = None if tensorboard is None else FindingWriter(tensorboard)
        self.collector: Collector | None = None
        self._spec = None
        self._fit_model = None
        self._wanted: set[str] = set()
        #: the ``rollback`` action's kept training states (None without the action)
        self.keeper: StateKeeper | None = None
        self._spike_state: dict[str, Any] = {}  # loss_spike's histories, restored by load_state_dict

    @property
    def findings(self) -> list[Finding]:
        return self.monitor.findings

    @property
    def stopped_by(self) -> Finding | None:
        return self.monitor.stopped_by

    def state_dict(self) -> dict[str, Any]:
        """Rule states, findings and ``loss_spike``'s histories as plain Python values (JSON-safe),
        for resuming a run."""
        state = self.monitor.state_dict()
        spikes = self.collector.spikes if self.collector is not None else None
        if spikes is not None:
            state["spikes"] = self.monitor.guard.call(SPIKES, spikes.state_dict, fallback={})
        elif self._spike_state:
            state["spikes"] = self._spike_state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (before ``fit``)."""
        self.monitor.load_state_dict(state)
        self._spike_state = dict(state.get("spikes") or {})

    # ---- lifecycle -----------------------------------------------------------------------

    @_cleaning_up
    def on_train_begin(self, logs=None) -> None:
        model = self._fit_model = self.model  # read once: on JAX every read syncs the state
        unscalable = keras_lr.why_not_scalable(model.optimizer)
        if unscalable is not None:  # before anything is hooked: the error leaves fit with the model as it was
            self.monitor.check_remediations(set(remediations()) - {"reduce_lr"}, why=f"here: {unscalable}")
        needs = self.monitor.needs()
        self._wanted = {n.stat for n in needs}
        self._loss_key = self.monitor.config.metrics.train_loss
        self._k = keras_optimizer.accumulation_steps(model.optimizer)
        counter = keras_optimizer.counting_optimizer(model.optimizer)
        self._micro = int(to_numpy(counter._iterations))
        self._flushed_at = self._micro // self._k  # optimizer steps completed at the latest flush
        self._epoch, self._batches, self._cum = 0, 0, 0.0
        self._pending_sum, self._pending_n, self._nonfinite = 0.0, 0, 0
        self._shapes_sent = False  # param_ndim goes with the first sample that has parameter statistics
        self._nan_flushed = False
        self._validated = False
        guard = self.monitor.guard
        self.collector = guard.call(SETUP, Collector, model, needs, self.monitor.interval, data=self.train_data is None,
                                    confusion=self.validation_data is None, selects=True, guard=guard,
                                    skip_step=self.monitor.uses("skip_step"))
        self._no_gradient = NoGradientNotice()
        if self.collector is not None:
            self._spec = self.collector.spec
            self.collector.install()
            self._drop_broken_collector()
        if self.collector is not None and self.collector.spikes is not None:
            guard.call(SPIKES, self.collector.spikes.start, self._micro // self._k)
            if self._spike_state:
                guard.call(SPIKES, self.collector.spikes.load_state_dict, self._spike_state)
        else:
            self._spec = guard.call("reading the model's classes", keras_data.label_spec, model)
        from tripwire.observe import drain

        drain()  # values observed before training came from Keras tracing the model and the loss
        if self.monitor.uses("rollback"):
            self.keeper = guard.call(ROLLBACK, self._start_keeping, model)
        first = Sample(step=self._micro // self._k, epoch=0)
        if self._micro == 0 and self._wanted & set(INIT_STATS):
            for key, values in guard.call("initialization statistics", init_stats, model, needs, fallback={}).items():
                first.add(key, values)
        if self.train_data is not None and self._wanted & _DATA_STATS:
            stats = guard.call("data statistics of train_data", keras_data.host_stats, self.train_data, self._spec,
                               needs, model, fallback={})
            for key, values in stats.items():
                first.add(key, values)
        if first.stats:
            self._act(self.monitor.process(first))

    def on_epoch_begin(self, epoch: int, logs=None) -> None:
        self._epoch, self._batches, self._cum = epoch, 0, 0.0
        self._nan_flushed = False
        self._validated = False

    def on_train_batch_begin(self, batch: int, logs=None) -> None:
        if self.collector is not None:
            update = (self._micro + 1) % self._k == 0  # this batch completes an optimizer step
            self.collector.select(update and self.monitor.due(self._micro // self._k), steps_done=self._micro)

    @_cleaning_up
    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self._drop_broken_collector()
        done = batch + 1
        delta = max(done - self._batches, 1)
        self._batches = done
        self._micro += delta
        loss = logs.get(self._loss_key) if logs else None
        nan_now = False
        if loss is not None:
            cum = float(loss) * done
            self._pending_sum += cum - self._cum
            self._pending_n += delta
            self._cum = cum
            if not math.isfinite(float(loss)):
                self._nonfinite += delta
                nan_now = not self._nan_flushed
        if self.keeper is not None and self._micro % self._k == 0:  # an optimizer step ended: its update is in
            self.monitor.guard.call(ROLLBACK, self.keeper.after_step, self._micro // self._k - 1)
        due = self.monitor.latest_due(self._flushed_at, self._micro // self._k)  # a sampled step ended
        if due is not None or nan_now:
            self._nan_flushed = self._nan_flushed or nan_now
            self._flush(self._current_step() if due is None else due)

    @_cleaning_up
    def on_test_begin(self, logs=None) -> None:
        if self.collector is not None:
            self.collector.reset_confusion()

    def on_test_end(self, logs=None) -> None:
        self._validated = True

    @_cleaning_up
    def on_epoch_end(self, epoch: int, logs=None) -> None:
        logs = logs or {}
        sample = Sample(step=self._micro // self._k, epoch=epoch)
        self._add_losses(sample)
        val = logs.get(self.monitor.config.metrics.val_loss)
        if val is not None and "val_loss" in self._wanted:
            sample.add("val_loss", float(val))
        if "confusion" in self._wanted and self._spec is not None:
            confusion = None
            if self.validation_data is not None:
                confusion = self.monitor.guard.call("confusion matrix of validation_data", keras_data.host_confusion,
                                                    self._fit_model, self.validation_data, self._spec)
            elif self._validated and self.collector is not None:
                confusion = self.collector.read_confusion()
            if confusion:
                sample.add("confusion", confusion)
        if sample.stats:
            self._act(self.monitor.process(sample))

    def on_train_end(self, logs=None) -> None:
        try:
            self._flush(self._current_step(), final=True)
        finally:
            self._teardown()

    # ---- helpers -------------------------------------------------------------------------

    def _teardown(self, error: BaseException | None = None) -> None:
        try:
            if self.collector is not None:
                self.collector.uninstall()
        finally:
            if self.tensorboard is not None:
                self.monitor.guard.call(TENSORBOARD, self.tensorboard.close)
            self.monitor.close(error=error)

    def _drop_broken_collector(self) -> None:
        """After a failure of the in-graph statistics: remove every hook, go on without them."""
        if self.collector is not None and self.collector.broken:
            self.collector.uninstall()
            self.collector = None

    def _add_losses(self, sample: Sample) -> None:
        if "loss" in self._wanted and self._pending_n:
            sample.add("loss", self._pending_sum / self._pending_n)
        if "loss_nonfinite" in self._wanted and self._pending_n:
            sample.add("loss_nonfinite", float(self._nonfinite))
        self._pending_sum, self._pending_n, self._nonfinite = 0.0, 0, 0

    def _current_step(self) -> int:
        """The step (0-based) the latest batch belongs to."""
        return max(self._micro - 1, 0) // self._k

    def _flush(self, step: int, final: bool = False) -> None:
        self._flushed_at = self._micro // self._k
        sample = Sample(step=step, epoch=self._epoch)
        if self.collector is not None:
            stats = self.monitor.guard.call("reading the statistics", self._read_statistics, step, final)
            if stats is None:  # the statistics cannot be read: stop computing them
                self.collector.broken = True
                self._drop_broken_collector()
            for key, values in (stats or {}).items():
                sample.add(key, values)
        self._add_losses(sample)
        self._add_learning_rate(sample)
        self._add_observed(sample)
        if sample.stats:
            if self.keeper is not None:
                self.keeper.note_sample(step)
            self._act(self.monitor.process(sample))

    def _start_keeping(self, model: Any) -> StateKeeper | None:
        state = KerasTrainingState(model, lambda: self.collector)
        keeper = keeper_for(self.monitor, state.capture, state.restore)
        if keeper is not None:
            keeper.start(self._micro // self._k - 1)  # the state before the next step's update
        return keeper

    def _read_statistics(self, step: int, final: bool) -> dict[str, dict[str | None, float]]:
        stats = self.collector.read(final=final, data=self.monitor.waiting(self.collector.data.stats))
        if self.collector.spikes is not None and self.monitor.guard.ok(SPIKES):
            stats.update(self.monitor.guard.call(SPIKES, self.collector.spikes.read, fallback={}))
        params = self.collector.params
        if params is not None:
            self._no_gradient.see(params.no_gradient, step)
            if "param_ndim" in self._wanted and not self._shapes_sent:
                self._shapes_sent = True
                stats["param_ndim"] = {name: float(len(v.shape)) for name, v in zip(params.names, params.variables)}
        return stats

    def _add_learning_rate(self, sample: Sample) -> None:
        """The learning rate of the sample's step: the one the latest update applied."""
        if "lr" not in self._wanted:
            return
        optimizer = getattr(self._fit_model, "optimizer", None)  # not self.model: on JAX each read syncs
        if optimizer is None:
            return
        rate = self.monitor.guard.call("learning rate", keras_optimizer.learning_rate, optimizer,
                                       self._reader(), applied=True)
        if rate is not None:
            sample.add("lr", rate)

    def _reader(self):
        """``read(variable) -> array``: on JAX from the trainer's state (the variables are stale and
        purged during ``fit``), also once the collector is gone."""
        if self.collector is not None and self.collector.jax is not None:
            return self.collector.jax.value
        if keras.backend.backend() == "jax":
            return JaxState(self._fit_model).value
        return to_numpy

    def _add_observed(self, sample: Sample) -> None:
        """``tripwire.observe`` values: eager ones (torch backend, ``run_eagerly=True``) only."""
        from tripwire.observe import drain

        for key, (total, count) in drain().items():
            try:
                sample.add(key, float(total if isinstance(total, float) else to_numpy(total)) / count)
            except Exception:  # noqa: BLE001 - a value traced into a compiled TF step has no number
                if not getattr(self, "_observe_warned", False):
                    self._observe_warned = True
                    log.warning("tripwire: %s was observed inside a compiled TensorFlow step, where it has no "
                                "value; use the torch backend or compile(run_eagerly=True) for tripwire.observe",
                                key)

    def _act(self, decision: Decision) -> None:
        if self.tensorboard is not None:
            self.monitor.guard.call(TENSORBOARD, self.tensorboard.write, decision.findings, len(self.findings),
                                    decision.step)
        self.monitor.execute(decision, _ModelSink(self))


def remediations() -> tuple[str, ...]:
    """The remediation actions the callback carries out on this process's Keras backend:
    ``rollback``, ``reduce_lr`` (a float learning rate: :mod:`tripwire.callbacks.keras.learning_rate`),
    and ``skip_step`` where ``loss_spike`` is judged in the train step (TensorFlow, JAX and torch;
    see :mod:`tripwire.callbacks.keras.spike`).

    Example:
        >>> keras.backend.backend(), remediations()
        ('tensorflow', ('rollback', 'reduce_lr', 'skip_step'))
    """
    if keras.backend.backend() in ("tensorflow", "jax", "torch"):
        return ("rollback", "reduce_lr", "skip_step")
    return ("rollback", "reduce_lr")


class _ModelSink:
    """Carries out decisions on the model ``fit`` trains."""

    checkpoint_suffix, checkpoint_root = ".keras", "."

    def __init__(self, callback: KerasTripwire) -> None:
        self.callback = callback

    def stop(self, finding: Finding) -> None:
        if self.callback._fit_model is not None:
            self.callback._fit_model.stop_training = True

    def reduce_lr(self, factor: float, min_lr: float) -> tuple[float, float]:
        callback = self.callback
        return keras_lr.lower_learning_rate(callback._fit_model, callback.collector, factor, min_lr)

    def rollback(self, step: int) -> tuple[int, int] | None:
        callback = self.callback
        if callback.keeper is None:
            return None
        return callback.keeper.roll_back_for(step, now=callback._current_step())

    def save_checkpoint(self, path: str) -> None:
        """Saved exactly as the user's optimizer: its own class and variables."""
        model, collector = self.callback._fit_model, self.callback.collector
        with collector.saving() if collector is not None else contextlib.nullcontext():
            if keras.backend.backend() == "jax":
                model.jax_state_sync()  # the values are in the trainer's state
            if not model.optimizer.built and model.trainable_variables:
                model.optimizer.build(model.trainable_variables)  # saved with its (fresh) slots
            model.save(path)
