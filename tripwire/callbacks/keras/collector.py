"""The in-graph collector behind :class:`~tripwire.callbacks.keras.KerasTripwire`.

It installs itself on a compiled model when training begins and removes itself when it ends:

- the optimizer's class gets the :class:`~tripwire.callbacks.keras.optimizer.TripwireApply`
  mixin, so ``apply`` passes the gradients through :meth:`Collector.around_apply` and
  ``scale_loss`` the batch's loss through :meth:`Collector.note_loss`; ``loss_spike`` is judged
  there at every step, sampled or not, and ``skip_step`` gates the update on the verdict
  (:mod:`tripwire.callbacks.keras.spike`);
- ``model.train_step`` is wrapped to mark the training phase and keep the batch;
- activation probes keep the outputs of ReLU/tanh/sigmoid activations of that step;
- with a confusion matrix to fill, ``test_step`` and ``compute_loss`` are wrapped to see the
  validation labels and predictions.

The callback tells the collector before each step whether it is sampled (:meth:`select`).
Only a sampled step runs the instrumented train function; the others run the model's own,
plain one. Inside the optimizer's ``apply`` of a sampled step, before the update: gradient
statistics (the accumulators, under gradient accumulation, are read before the update resets
them), activations, the batch, and the weights as they are, which become the snapshot that
``weight_unchanged`` compares the next sample against and ``update_ratio`` measures the update
by; after the update: weight statistics and ``update_ratio``. Each part is packed into a slice
of one variable with one ``assign``; the host reads that variable with one copy per flush
(:meth:`read`). Without :meth:`select` (a caller that does not call it, or
``steps_per_execution > 1``, where one call runs several steps) one train function runs every
step and a ``cond`` on the optimizer's own step counter gates the statistics instead. The torch
backend runs eagerly and its ``cond`` would read the predicate on the host every step, so there
a Python flag gates them.

Fail open: every part that reaches into the model runs under the ``guard``
(:mod:`tripwire.failopen`). A probe that fails costs only its own layer's activation statistics.
Anything else that fails, installing a hook (optimizer class, ``train_step``, ``test_step``,
``compute_loss``), building the statistics while the step is traced (then the step applies the
update without them: :meth:`Collector.around_apply`) or running the instrumented train function
(then the model's own one trains the same batch: :mod:`tripwire.callbacks.keras.fallback`),
marks the collector :attr:`~Collector.broken`; its caller then uninstalls it, so the model runs
its own functions again. :meth:`Collector.uninstall` restores every hook it can even when one
of them fails.

The JAX backend runs a stateless ``train_step(state, data)``: the variables the step writes are
made part of that state, its ``cond`` branches hand out values instead of assigning, the
activation statistics are reduced in ``compute_loss`` (the outputs of the forward pass cannot
leave the gradient's trace) into a buffer of their own, and the host reads the trainer's state
(:mod:`tripwire.callbacks.keras.jax`).

Example:
    >>> import keras, numpy as np
    >>> from tripwire.stats import Need
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...                           keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> col = Collector(model, {Need("grad_global_norm"), Need("act_dead_frac")}, interval=2)
    >>> col.install()
    >>> _ = model.fit(np.ones((16, 4)), np.ones((16, 1)), batch_size=8, epochs=1, verbose=0)
    >>> sorted(col.read())
    ['act_dead_frac', 'grad_global_norm']
    >>> col.uninstall()
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import threading
from collections.abc import Iterable, Iterator

import keras
from keras import ops

from tripwire.callbacks.keras import math as km
from tripwire.callbacks.keras import optimizer as kopt
from tripwire.callbacks.keras.activations import ActivationProbes
from tripwire.callbacks.keras.buffer import Layout, PackedBuffer, reset, to_numpy
from tripwire.callbacks.keras.data import Confusion, DataStats, LabelSpec, label_spec
from tripwire.callbacks.keras.fallback import guarded_train_function
from tripwire.callbacks.keras.jax import JaxState, when
from tripwire.callbacks.keras.params import ParamStats, _dense
from tripwire.callbacks.keras.spike import SPIKE_STATS, KerasSpikes
from tripwire.failopen import FailOpen
from tripwire.stats import Need

log = logging.getLogger("tripwire")

#: fail-open parts (see tripwire.failopen) of the in-graph statistics
SETUP = "statistics setup"
IN_STEP = "statistics in the train step"
TRAIN_FUNCTION = "instrumented train function"
CONFUSION = "confusion matrix"
SPIKES = "spike judgement in the train step"
UNINSTALL = "removing the hooks"


def _strategy(model):
    """The model's ``tf.distribute`` strategy (TF backend), else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    return getattr(model, "distribute_strategy", None)


class Collector:
    """Computes the needed statistics inside ``model``'s compiled steps.

    Args:
        model: a compiled Keras model.
        needs: the statistics the enabled rules need (others are ignored).
        interval: optimizer steps between sampled steps (the monitor's; the in-graph gate, used
            where the caller does not :meth:`select`, applies :meth:`tripwire.Monitor.due`'s test).
        data: compute label/input/token statistics from the training batches.
        confusion: fill a confusion matrix from the validation batches.
        selects: the caller calls :meth:`select` before every training step.
        guard: the fail-open guard of the run (a non-strict one when not given).
        skip_step: leave out the update of a step whose spike judgement fired (``skip_step``).

    Attributes:
        spikes: the per-step spike judgement (:mod:`~tripwire.callbacks.keras.spike`), or None
            (no rule needs it, or it cannot run here: :func:`spikes_unsupported`).
    """

    def __init__(self, model, needs: Iterable[Need], interval: int, *, data: bool = True,
                 confusion: bool = True, selects: bool = False, guard: FailOpen | None = None,
                 skip_step: bool = False) -> None:
        self.model = model
        self.guard = guard or FailOpen()
        #: a failure switched the in-graph statistics off: the caller should :meth:`uninstall`
        self.broken = False
        #: the optimizer's step count before the coming step, when the caller tells it (select)
        self.steps_done: int | None = None
        self.needs = set(needs)
        self.interval = int(interval)
        self.backend = keras.backend.backend()
        self.eager_gate = self.backend == "torch"
        self.jax = JaxState(model) if self.backend == "jax" else None
        #: whether the coming step is sampled (set by the caller through select)
        self.sampling = False
        #: the caller selects the train function per step (TF and JAX with one step per call): the
        #: statistics need no gate in the graph; otherwise a cond on the optimizer's counter decides
        self.selected = selects and not self.eager_gate and int(getattr(model, "steps_per_execution", 1) or 1) == 1
        self.strategy = _strategy(model)
        self.spec: LabelSpec | None = label_spec(model)
        self._local = threading.local()
        self.pre = Layout("pre")  # gradients, activations, weight snapshot (before the update of a sampled step)
        self.post = Layout("post")  # weights (after it)
        # on JAX the forward pass writes the activation statistics into a buffer of their own
        self.act_layout = Layout("activations") if self.jax is not None else self.pre
        self.acts = ActivationProbes(model, self.needs, self.act_layout, self.guard)
        self.act_buffer: PackedBuffer | None = None
        #: a subclassed model without an input spec is built by the first traced step: its
        #: gradient and weight statistics are then laid out in that step (see around_apply)
        self.params: ParamStats | None = None
        if model.trainable_variables:
            self._lay_out_params(list(model.trainable_variables))
        self.data = DataStats(model, self.needs if data else (), self.spec)
        want_confusion = confusion and "confusion" in {n.stat for n in self.needs}
        self.confusion: Confusion | None = None
        self._want_confusion = want_confusion and self.spec is not None and self.spec.classes <= 256
        self.buffer: PackedBuffer | None = None
        #: the data totals (kept summing on the device) are decoded after `data_every` reads, then
        #: after twice as many, and so on up to every 64 reads: per-feature statistics of wide
        #: inputs are thousands of values, which would otherwise dominate the host's work; at every
        #: read while a rule that reads them has not judged yet (see :meth:`read`)
        self.data_every = max(1, -(-len(self.data.layout) // 256))
        self._reads = 0
        self._data_gap = self._next_data = self.data_every
        self.spikes: KerasSpikes | None = None
        if any(n.stat in SPIKE_STATS for n in self.needs):
            reason = spikes_unsupported(model)
            if reason is None:
                self.spikes = KerasSpikes(self.needs, skip=skip_step, when=self._when_variables, state=self.jax)
            else:
                log.warning("tripwire: loss_spike is not judged here: %s", reason)
        self._installed = False
        self._plain = self._instrumented = None

    # ---- install / uninstall -------------------------------------------------------------

    def install(self) -> None:
        """Hook into the model and (re)build its train/test functions; idempotent. When a hook
        cannot be installed, every hook installed so far is removed again, the part is reported
        through the guard and the collector is :attr:`broken`."""
        if self._installed or self.broken:
            return
        if self.jax is not None and self.params is None:  # fit builds the model before callbacks begin
            log.warning("tripwire: the model has no variables yet; no in-graph statistics on JAX")
            return
        model = self.model
        steps = [(SETUP, self._prepare),
                 ("optimizer hook", lambda: kopt.attach(self.hooked, self)),
                 ("train_step hook", lambda: _wrap(model, "train_step", self._train_step)),
                 (SETUP, lambda: self.acts.install(self._record))]  # a failing probe costs its own layer only
        if self._want_confusion:
            steps.append(("test_step hook", lambda: _wrap(model, "test_step", self._test_step)))
        if self._want_confusion or (self.jax is not None and self.acts.slots):
            steps.append(("compute_loss hook", lambda: _wrap(model, "compute_loss", self._compute_loss)))
        steps.append((SETUP, self._instrument_functions))
        self._installed = True  # from here on, uninstall removes whatever got installed
        for part, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - reported through the guard
                self.broken = True
                try:
                    self.uninstall()
                finally:
                    self.guard.fail(part, exc)
                return

    def _prepare(self) -> None:
        """Variables, and the model's own train function made before any hook: what runs on the
        steps that are not sampled, and what the instrumented function falls back to."""
        model = self.model
        if self.params is not None and self.buffer is None:
            self._allocate()
        if self._want_confusion and self.confusion is None:
            self.confusion = Confusion(self.spec, self.strategy)
        if self.jax is not None:
            spiking = self.spikes.variables if self.spikes is not None else []
            self.jax.attach(self.hooked, [self.buffer.variable, *self.params.snapshots, *spiking],
                            [b.variable for b in (self.act_buffer, self.confusion) if b is not None])
            if self.spikes is not None and self.spikes.wants("loss"):
                self._warn_loss_unjudged_on_jax()
        model.make_train_function(force=True)
        self._plain = self._ending_clean(self._own(model.train_function))

    def _warn_loss_unjudged_on_jax(self) -> None:
        """JAX: Keras's ``train_step`` hands the loss to the optimizer (``scale_loss``) only inside the
        gradient's trace, which no value may leave, and it has no other hook between the loss and
        the update; so there only the gradient norm is judged (said once)."""
        log.warning("tripwire: on the JAX backend loss_spike judges the global gradient norm only: Keras "
                    "hands the loss to the optimizer inside the gradient's trace, where it cannot be read")

    def _when_variables(self, pred, fn, variables: list) -> None:
        """Run ``fn`` (which writes ``variables``) where ``pred`` holds, in the graph."""
        if self.jax is not None:
            when(pred, fn, variables)
        else:
            ops.cond(pred, fn, _nothing)

    def _own(self, function):
        """The model's own train function, made before the hooks. TensorFlow and JAX keep the
        ``train_step`` the model had when it was made; torch looks ``model.train_step`` up on every
        call, so there it runs with tripwire's wrapper set aside."""
        if self.backend != "torch":
            return function
        model = self.model

        def own(*args, **kwargs):
            wrapper = vars(model).get("train_step")
            if wrapper is None:
                return function(*args, **kwargs)
            delattr(model, "train_step")
            try:
                return function(*args, **kwargs)
            finally:
                model.train_step = wrapper

        return own

    def _instrument_functions(self) -> None:
        model = self.model
        self._rebuild_functions()
        instrumented = guarded_train_function(model, model.train_function, self._plain, self._function_failed,
                                              lambda: self.steps_done)
        self._instrumented = model.train_function = self._ending_clean(instrumented)
        model.make_test_function(force=True)
        model.test_function = self._ending_clean(model.test_function)

    def _ending_clean(self, function):
        """``function``, removing every hook before an exception leaves it (``strict=True``, or an
        error in the user's own step): that exception ends ``fit``, and the model is the user's own
        again. Outside any trace: on JAX, removing the hooks syncs the trainer's state first."""
        def ending(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except StopIteration:  # the end of the data
                raise
            except BaseException:
                with contextlib.suppress(Exception):  # the exception to see is the one raised
                    self.uninstall()
                raise

        return ending

    def select(self, sampled: bool, steps_done: int | None = None) -> None:
        """Before a step: whether it is sampled, and the optimizer's step count before it (when the
        caller knows it). With ``selects``, the model runs its own, plain train function on the
        other steps and one computing the statistics unconditionally on this one; on the torch
        backend a Python flag skips the statistics instead."""
        self.sampling = sampled
        self.steps_done = steps_done
        if self._installed and self.selected and not self.broken:
            function = self._instrumented if sampled else self._plain
            if self.model.train_function is not function:  # a model attribute write is not free
                self.model.train_function = function

    def _function_failed(self, exc: Exception) -> None:
        """The instrumented train function raised: the plain one trains from now on (the caller
        uninstalls the collector between steps). Under ``strict`` the exception ends ``fit``:
        the hooks are removed on the way out (see _ending_clean)."""
        self.broken = True
        if self._plain is not None:
            self.model.train_function = self._plain
        self.guard.fail(TRAIN_FUNCTION, exc)

    def _step_failed(self, exc: Exception) -> None:
        """Building the statistics inside the traced step raised: the step trains without them."""
        self.broken = True
        self.guard.fail(IN_STEP, exc)

    @property
    def hooked(self):
        """The optimizer whose ``apply`` sees the gradients: on JAX a ``LossScaleOptimizer`` never
        calls its own ``apply`` (it has a stateless path), so there it is the inner optimizer."""
        optimizer = self.model.optimizer
        if self.jax is not None and kopt.is_loss_scaled(optimizer):
            return kopt.counting_optimizer(optimizer)
        return optimizer

    def _xla(self) -> bool:
        """Whether TensorFlow compiles the train step with XLA."""
        return self.backend == "tensorflow" and bool(getattr(self.model, "jit_compile", False))

    def _lay_out_params(self, variables: list) -> None:
        xla = self._xla()
        self.params = ParamStats(self.needs, variables, self.pre, self.post, kopt.is_loss_scaled(self.hooked),
                                 xla=xla)
        self.pre.skip_once = set(self.params.unchanged_keys)  # the first comparison has no predecessor

    def _allocate(self, traced: bool = False) -> None:
        params = self.params
        layouts = [self.pre]
        layouts += [self.post] if params.wants_weights else []
        layouts += [self.data.layout] if self.data.wanted else []
        self.buffer = PackedBuffer(layouts, self.strategy, self.jax)
        if self.act_layout is not self.pre and self.acts.slots:
            self.act_buffer = PackedBuffer([self.act_layout], self.strategy, self.jax)
        params.allocate(self.strategy)
        if params.wants_snapshot and not traced:
            # the weights as training begins: what weight_unchanged compares the first sample against
            weights = params.keep_host([to_numpy(var) for var in params.variables])
            for w, snap in zip(weights, params.snapshots):
                reset(snap, self.strategy, w)
            if params.snap_sumsq is not None:
                self.buffer.set(self.pre, {params.snap_sumsq: [float((w.astype("float64") ** 2).sum())
                                                               for w in weights]})

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """While the model is saved during training: the user's optimizer class (and, on JAX, its
        variables only: see :meth:`~tripwire.callbacks.keras.jax.JaxState.attach`)."""
        optimizer = self.hooked
        if self.jax is not None:
            self.jax.sync()  # the values are in the trainer's state
        kopt.detach(optimizer)
        try:
            yield
        finally:
            if self._installed:
                kopt.attach(optimizer, self)

    def uninstall(self) -> None:
        """Remove every hook; the next ``fit``/``evaluate`` traces clean functions. A step that
        fails does not keep the others from running; the first failure is reported through the
        guard once all were tried, and the model keeps a train function that trains."""
        if not self._installed:
            return
        model = self.model
        steps = [self.jax.detach] if self.jax is not None else []
        steps.append(lambda: kopt.detach(self.hooked))
        steps += [lambda name=name: _unwrap(model, name) for name in ("train_step", "test_step", "compute_loss")]
        steps += [self.acts.remove, self._rebuild_functions]
        errors = []
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - restore everything else first
                errors.append(exc)
        if getattr(model, "train_function", True) is None:  # not rebuilt: the model's own one still trains
            model.train_function = self._plain
        self._installed = False
        self._plain = self._instrumented = None
        if errors:
            self.guard.fail(UNINSTALL, errors[0])

    def _rebuild_functions(self) -> None:
        model = self.model
        model.test_function = None
        if hasattr(model, "make_train_function"):
            model.train_function = None
            model.make_train_function(force=True)

    # ---- hooks (run while tracing on TF, every step on torch) -----------------------------

    def _state(self):
        st = self._local
        if not hasattr(st, "phase"):
            st.phase, st.outputs, st.data, st.act_gate, st.loss = None, {}, None, None, None
        return st

    def note_loss(self, loss) -> None:
        """The batch's loss, from the optimizer's ``scale_loss`` (while tracing): judged in ``apply``.
        On JAX ``scale_loss`` runs inside the gradient's trace, which the value cannot leave: there
        it is not judged (:meth:`_warn_loss_unjudged_on_jax`)."""
        if self.spikes is not None and self.spikes.wants("loss") and self.jax is None:
            self._state().loss = loss

    def _train_step(self, original, *args):  # (data) or, on JAX, (state, data)
        if not self.guard.ok(IN_STEP):
            return original(*args)
        st = self._state()
        try:
            st.phase, st.outputs, st.data = "train", {}, args[-1] if self.data.wanted else None
            st.act_gate = self._jax_gate(args[0]) if self.act_buffer is not None and len(args) == 2 else None
        except Exception as exc:  # noqa: BLE001 - reported through the guard; the step trains without
            st.phase, st.outputs, st.data, st.act_gate = None, {}, None, None
            self._step_failed(exc)
            return original(*args)
        try:
            return original(*args)
        finally:
            st.phase, st.outputs, st.data, st.act_gate = None, {}, None, None

    def _jax_gate(self, state):
        """``(sampled, step)`` of this step from the optimizer variables in the JAX trainer's state."""
        optimizer = self.model.optimizer
        with keras.StatelessScope(state_mapping=list(zip(optimizer.variables, state[2]))):
            sampled, step = self._gate(self.hooked)
            if self.spikes is not None and self.guard.ok(SPIKES) and isinstance(sampled, bool) and step is not None:
                step = self.spikes.judged + 1.0  # counts every step (skip_step leaves the optimizer's count behind)
            return sampled, step

    def _test_step(self, original, *args):  # (data) or, on JAX, (state, data)
        st = self._state()
        st.phase = "test"
        try:
            return original(*args)
        finally:
            st.phase = None

    def _compute_loss(self, original, *args, **kwargs):
        st = self._state()
        if st.phase == "train" and st.act_gate is not None and self.guard.ok(IN_STEP):
            # JAX: the outputs belong to the gradient's trace, so they are reduced here, inside it
            outputs, (sampled, step) = st.outputs, st.act_gate
            st.outputs = {}
            buffer = self.act_buffer
            try:
                self._when(sampled, lambda: buffer.write(self.act_layout, self.acts.compute(outputs), step),
                           [buffer.variable])
            except Exception as exc:  # noqa: BLE001 - reported through the guard; the loss is unaffected
                self._step_failed(exc)
        if st.phase == "test" and self.confusion is not None and self.guard.ok(CONFUSION):
            self.guard.call(CONFUSION, self._add_confusion, original, args, kwargs)
        return original(*args, **kwargs)

    def _add_confusion(self, original, args: tuple, kwargs: dict) -> None:
        bound = inspect.signature(original).bind_partial(*args, **kwargs).arguments
        y, y_pred = bound.get("y"), bound.get("y_pred")
        if y is not None and y_pred is not None and not isinstance(y_pred, (list, tuple, dict)):
            self.confusion.add(ops.stop_gradient(y), ops.stop_gradient(y_pred))

    def _record(self, site: int, y) -> None:
        st = self._state()
        if st.phase == "train" and (self.sampling or not self.eager_gate):
            st.outputs[site] = y

    def _gate(self, optimizer):
        """``(sampled, stamp)``: whether this optimizer step is sampled (a Python bool where the
        caller decides, else a tensor: the test of :meth:`tripwire.Monitor.due` on its 0-based
        index) and its 1-based number, the stamp that tells a fresh sample from one already read."""
        if self.eager_gate and not self.sampling:
            return False, None
        counter = kopt.counting_optimizer(optimizer)
        k = kopt.accumulation_steps(optimizer)
        done = counter._iterations + 1
        step = done // k if k > 1 else done
        if self.eager_gate:
            return True, step
        if self.selected:  # this function runs on sampled steps only (see select)
            return True, step
        sampled = ops.equal((step - 1) % self.interval, 0)
        if k > 1:
            sampled = ops.logical_and(ops.equal(done % k, 0), sampled)
        return sampled, step

    def _when(self, sampled, fn, variables: list) -> None:
        """Run ``fn`` (which writes ``variables``) on a sampled step: a Python ``if`` or a ``cond``."""
        if isinstance(sampled, bool):
            if sampled:
                fn()
        elif self.jax is not None:
            when(sampled, fn, variables)
        else:
            ops.cond(sampled, fn, _nothing)

    def around_apply(self, optimizer, apply, grads, trainable_variables=None):
        """Statistics of this step around the real ``apply`` (called by the optimizer mixin). When
        building them raises, the step applies the update without them (and the collector is
        :attr:`broken`)."""
        st = self._state()
        grads = list(grads)
        counted = None  # the step's 1-based number, counted by the spike judgement (which skip_step keeps from
        if self.spikes is not None and self.guard.ok(SPIKES):  # the optimizer); every step, unsampled ones too
            apply, counted = self._judged(optimizer, apply, grads, trainable_variables)
        if st.phase != "train" or not self.guard.ok(IN_STEP):  # the plain train function, an apply outside fit
            return apply(grads, trainable_variables)
        outputs, data = st.outputs, st.data
        st.outputs, st.data = {}, None
        try:
            before, after, sampled, written = self._statistics(optimizer, grads, trainable_variables, outputs, data,
                                                               counted)
            self._when(sampled, before, written)
        except Exception as exc:  # noqa: BLE001 - reported through the guard; the update goes on
            self._step_failed(exc)
            return apply(grads, trainable_variables)
        result = apply(grads, trainable_variables)
        if after is not None:
            try:
                self._when(sampled, after, written)
            except Exception as exc:  # noqa: BLE001 - the update is done; only the statistics are lost
                self._step_failed(exc)
        return result

    def _judged(self, optimizer, apply, grads: list, trainable_variables):
        """Judge this step's spikes (the loss noted by ``scale_loss``, the global gradient norm):
        ``(apply, step)``, ``apply`` gated on the verdict under ``skip_step`` and the step's 1-based
        number. When building the judgement raises, it is switched off: ``(apply, None)``."""
        st = self._state()
        loss, st.loss = st.loss, None
        try:
            self._build_optimizer(optimizer, trainable_variables)
            norm = None
            if self.spikes.wants("grad_norm"):
                fused = not self._xla()  # XLA has no kernel for TensorFlow's fused norm
                dense = [_dense(g) for g in grads if g is not None]
                norm = km.norm(ops.stack([km.norm(g, fused) for g in dense]), fused) if dense else None
                scale = ParamStats.grad_scale(optimizer)
                if norm is not None and scale is not None:
                    norm = norm / scale
            flag = self.spikes.judge(loss, norm)
        except Exception as exc:  # noqa: BLE001 - reported through the guard; the update goes on
            self.guard.fail(SPIKES, exc)
            return apply, None
        counted = self.spikes.judged
        if flag is None or not self.spikes.skip:
            return apply, counted
        written = [*kopt.counting_optimizer(optimizer)._trainable_variables, *optimizer.variables]
        return self.spikes.gate(flag, apply, written), counted

    def _build_optimizer(self, optimizer, trainable_variables) -> None:
        """What ``apply`` would do first: the statistics and the gate need the optimizer's variables now."""
        if not optimizer.built and trainable_variables is not None:
            with keras.name_scope(optimizer.name, caller=optimizer):
                optimizer.build(list(trainable_variables))
            optimizer.built = True

    def _statistics(self, optimizer, grads: list, trainable_variables, outputs: dict, data, counted=None):
        """``(before, after, sampled, written)``: what a step computes before and after its update
        (``after`` None when no weight statistics are needed), its gate, and the variables written.
        ``counted``: the step's 1-based number where the spike judgement counts the steps."""
        self._build_optimizer(optimizer, trainable_variables)
        variables = list(trainable_variables) if trainable_variables is not None else \
            list(getattr(kopt.counting_optimizer(optimizer), "_trainable_variables", []))
        if self.params is None:  # first step of a model built by its first call
            self._lay_out_params(variables)
            self._allocate(traced=True)
        sampled, step = self._gate(optimizer)
        if counted is not None and step is not None and isinstance(sampled, bool):  # the caller decides: the
            step = counted  # stamp counts every step (a skipped update leaves the optimizer's count behind)
        params, buffer, n = self.params, self.buffer, len(self.params.variables)
        scale = params.grad_scale(optimizer) if params.wants_grads else None
        written = [buffer.variable, *params.snapshots]

        def before() -> None:  # gradients (accumulators are reset by the update), activations, batch, snapshot
            params.note_gradients(grads, variables)
            values = params.grads(optimizer, grads, variables, scale)
            values.update(self.acts.compute(outputs))
            if params.wants_snapshot:
                previous = buffer.block(self.pre, params.snap_sumsq, n)
                values.update(params.before_update(previous, exact=self.eager_gate))
            buffer.write(self.pre, values, step)
            if data is not None and self.data.wanted:
                buffer.write(self.data.layout, self.data.compute(data), step)

        def after() -> None:  # the updated weights
            sumsq = buffer.block(self.pre, params.snap_sumsq, n) if params.snap_sumsq is not None else None
            buffer.write(self.post, params.after_update(sumsq), step)

        return before, after if params.wants_weights else None, sampled, written

    # ---- host side -----------------------------------------------------------------------

    def read(self, final: bool = False, *, data: bool = False) -> dict[str, dict[str | None, float]]:
        """Statistics of the latest sampled step not read yet and, when due (or ``final``, or
        ``data``: a rule that reads them still waits for its first verdict), the data totals since
        they were last decoded: one host copy."""
        if self.buffer is None:
            return {}
        self._reads += 1
        stats: dict[str, dict[str | None, float]] = {}
        for buffer in (self.buffer, self.act_buffer):
            if buffer is None:
                continue
            rows = buffer.read()
            for layout in buffer.layouts:
                if layout is self.data.layout:
                    due = final or self._reads >= self._next_data
                    if due:
                        self._data_gap = min(2 * self._data_gap, max(64, self.data_every))
                        self._next_data = self._reads + self._data_gap
                    elif not data:
                        continue
                stats.update(buffer.take(layout, rows))
        self.acts.drop_unmeasured(stats)
        return {k: v for k, v in stats.items() if not k.startswith("__")}

    def reset_confusion(self) -> None:
        if self.confusion is not None:
            self.guard.call(CONFUSION, self.confusion.reset)

    def read_confusion(self) -> dict[str | None, float] | None:
        if self.confusion is None:
            return None
        return self.guard.call(CONFUSION, self.confusion.read)


def _nothing() -> None:
    return None


def spikes_unsupported(model) -> str | None:
    """Why ``loss_spike`` cannot be judged in ``model``'s train step, or None when it can."""
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "torch", "jax"):
        return f"the {backend} backend (judged on TensorFlow, JAX and torch)"
    if backend == "tensorflow" and getattr(model, "_distribute_strategy", None) is not None:
        return "under tf.distribute (each replica would judge its own loss)"
    if kopt.accumulation_steps(model.optimizer) > 1:
        return "with gradient_accumulation_steps (apply runs once per micro-batch)"
    return None


def _wrap(obj, name: str, hook) -> None:
    """Replace ``obj.name`` by ``hook(original, *args)``, over any earlier tripwire wrapper."""
    original = getattr(obj, name)
    while hasattr(original, "_tripwire_original"):
        original = original._tripwire_original

    def wrapper(*args, **kwargs):
        return hook(original, *args, **kwargs)

    wrapper._tripwire_original = original
    setattr(obj, name, wrapper)


def _unwrap(obj, name: str) -> None:
    current = vars(obj).get(name)
    if current is None or not hasattr(current, "_tripwire_original"):
        return
    original = current
    while hasattr(original, "_tripwire_original"):
        original = original._tripwire_original
    delattr(obj, name)
    if getattr(obj, name, None) != original:
        setattr(obj, name, original)


