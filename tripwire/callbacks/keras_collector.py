"""The in-graph collector behind :class:`~tripwire.callbacks.keras.KerasTripwire`.

It installs itself on a compiled model when training begins and removes itself when it ends:

- the optimizer's class gets the :class:`~tripwire.callbacks.keras_optimizer.TripwireApply`
  mixin, so ``apply`` passes the gradients through :meth:`Collector.around_apply`;
- ``model.train_step`` is wrapped to mark the training phase and keep the batch;
- activation probes keep the outputs of ReLU/tanh/sigmoid activations of that step;
- with a confusion matrix to fill, ``test_step`` and ``compute_loss`` are wrapped to see the
  validation labels and predictions.

Inside ``apply``, after the real update, one ``ops.switch`` on the optimizer's own step counter
runs the statistics of a sampled step (gradients, activations, the batch, the updated weights)
or, on the step before one, the weight snapshot that ``update_ratio`` and ``weight_unchanged``
compare against; on the other steps it runs nothing. Nothing in it reads a weight before the
update, so the update never waits for the statistics. (Under gradient accumulation the gradient
part runs in a ``cond`` before the update, which resets the accumulators.) Each part is packed
into a slice of one variable with one ``assign``; the host reads that variable with one copy per
flush (:meth:`read`). The torch backend runs eagerly and its ``cond`` would read the predicate on
the host every step, so there Python flags set by the callback decide instead.

The JAX backend runs ``train_step`` statelessly: writes from inside it would need the trainer's
state plumbing, so on JAX the collector computes nothing in-graph (losses from the logs,
initialization statistics and explicitly given data still work).

Example:
    >>> import keras, numpy as np
    >>> from tripwire.stats import Need
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
    ...                           keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> col = Collector(model, {Need("grad_global_norm"), Need("act_dead_frac")}, interval=2)
    >>> col.install()
    >>> _ = model.fit(np.ones((8, 4)), np.ones((8, 1)), batch_size=4, epochs=1, verbose=0)
    >>> sorted(col.read())
    ['act_dead_frac', 'grad_global_norm']
    >>> col.uninstall()
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterable

import keras
from keras import ops

from tripwire.callbacks import keras_optimizer as kopt
from tripwire.callbacks.keras_activations import ActivationProbes
from tripwire.callbacks.keras_buffer import Layout, PackedBuffer, reset, to_numpy
from tripwire.callbacks.keras_data import Confusion, DataStats, LabelSpec, label_spec
from tripwire.callbacks.keras_params import RATIO_OK, ParamStats
from tripwire.stats import Need

log = logging.getLogger("tripwire")


def _strategy(model):  # noqa: ANN001, ANN202
    """The model's ``tf.distribute`` strategy (TF backend), else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    return getattr(model, "distribute_strategy", None)


class Collector:
    """Computes the needed statistics inside ``model``'s compiled steps.

    Args:
        model: a compiled Keras model.
        needs: the statistics the enabled rules need (others are ignored).
        interval: optimizer steps between sampled steps.
        data: compute label/input/token statistics from the training batches.
        confusion: fill a confusion matrix from the validation batches.
    """

    def __init__(self, model, needs: Iterable[Need], interval: int, *, data: bool = True,  # noqa: ANN001
                 confusion: bool = True) -> None:
        self.model = model
        self.needs = set(needs)
        self.interval = int(interval)
        self.backend = keras.backend.backend()
        self.in_graph = self.backend != "jax"
        self.eager_gate = self.backend == "torch"
        #: torch backend: whether the coming step is sampled / the one before (set by the callback)
        self.sampling = False
        self.snapshotting = False
        self.strategy = _strategy(model)
        self.spec: LabelSpec | None = label_spec(model)
        self._local = threading.local()
        self.pre = Layout("pre")  # gradients, activations (before the update of a sampled step)
        self.post = Layout("post")  # weights (after it)
        # weight_unchanged (after the step before a sampled step); stamp -1: no snapshot yet
        self.snap = Layout("snapshot", stamp=-1.0)
        self.acts = ActivationProbes(model, self.needs, self.pre)
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
        #: inputs are thousands of values, which would otherwise dominate the host's work
        self.data_every = max(1, -(-len(self.data.layout) // 256))
        self._reads = 0
        self._data_gap = self._next_data = self.data_every
        self._installed = False

    # ---- install / uninstall -------------------------------------------------------------

    def install(self) -> None:
        """Hook into the model and (re)build its train/test functions; idempotent."""
        if self._installed or not self.in_graph:
            if not self.in_graph:
                log.warning("tripwire: on the %s backend gradient, weight, activation and data statistics are not "
                            "collected in-graph; losses, initialization and explicitly given data still are",
                            self.backend)
            return
        model = self.model
        if self.params is not None and self.buffer is None:
            self._allocate()
        if self._want_confusion and self.confusion is None:
            self.confusion = Confusion(self.spec, self.strategy)
        kopt.attach(model.optimizer, self)
        _wrap(model, "train_step", self._train_step)
        self.acts.install(self._record)
        if self.confusion is not None:
            _wrap(model, "test_step", self._test_step)
            _wrap(model, "compute_loss", self._compute_loss)
        self._installed = True
        self._rebuild_functions()

    def _lay_out_params(self, variables: list) -> None:
        xla = self.backend == "tensorflow" and bool(getattr(self.model, "jit_compile", False))
        self.params = ParamStats(self.needs, variables, self.pre, self.post, self.snap,
                                 kopt.is_loss_scaled(self.model.optimizer), xla=xla)
        self.snap.skip_once = set(self.params.unchanged_keys)  # the first comparison has no predecessor

    def _allocate(self, traced: bool = False) -> None:
        params = self.params
        layouts = [self.pre]
        layouts += [self.post] if params.wants_weights else []
        layouts += [self.snap] if params.wants_snapshot else []
        layouts += [self.data.layout] if self.data.wanted else []
        self.buffer = PackedBuffer(layouts, self.strategy)
        params.allocate(self.strategy)
        if params.wants_snapshot and not traced:
            # the weights before the first step, so update_ratio of step 1 (interval=1) has them
            weights = [to_numpy(var) for var in params.variables]
            for w, snap in zip(weights, params.snapshots):
                reset(snap, self.strategy, w)
            optimizer = self.model.optimizer
            done = int(to_numpy(kopt.counting_optimizer(optimizer)._iterations))
            sumsq = {} if params.snap_sumsq is None else {
                params.snap_sumsq: [float((w.astype("float64") ** 2).sum()) for w in weights]}
            self.buffer.set(self.snap, done // kopt.accumulation_steps(optimizer), sumsq)

    def uninstall(self) -> None:
        """Remove every hook; the next ``fit``/``evaluate`` traces clean functions."""
        if not self._installed:
            return
        model = self.model
        kopt.detach(model.optimizer)
        for name in ("train_step", "test_step", "compute_loss"):
            _unwrap(model, name)
        self.acts.remove()
        self._installed = False
        self._rebuild_functions()

    def _rebuild_functions(self) -> None:
        model = self.model
        model.test_function = None
        if hasattr(model, "make_train_function"):
            model.train_function = None
            model.make_train_function(force=True)

    # ---- hooks (run while tracing on TF, every step on torch) -----------------------------

    def _state(self):  # noqa: ANN202
        st = self._local
        if not hasattr(st, "phase"):
            st.phase, st.outputs, st.data = None, {}, None
        return st

    def _train_step(self, original, data):  # noqa: ANN001, ANN202
        st = self._state()
        st.phase, st.outputs, st.data = "train", {}, data if self.data.wanted else None
        try:
            return original(data)
        finally:
            st.phase, st.outputs, st.data = None, {}, None

    def _test_step(self, original, data):  # noqa: ANN001, ANN202
        st = self._state()
        st.phase = "test"
        try:
            return original(data)
        finally:
            st.phase = None

    def _compute_loss(self, original, *args, **kwargs):  # noqa: ANN001, ANN202
        if self._state().phase == "test" and self.confusion is not None:
            bound = inspect.signature(original).bind_partial(*args, **kwargs).arguments
            y, y_pred = bound.get("y"), bound.get("y_pred")
            if y is not None and y_pred is not None and not isinstance(y_pred, (list, tuple, dict)):
                self.confusion.add(ops.stop_gradient(y), ops.stop_gradient(y_pred))
        return original(*args, **kwargs)

    def _record(self, site: int, y) -> None:  # noqa: ANN001
        st = self._state()
        if st.phase == "train" and (self.sampling or not self.eager_gate):
            st.outputs[site] = y

    def _gate(self, optimizer):  # noqa: ANN001, ANN202
        """``(sampled, snapshot, step)``: whether this optimizer step is sampled, whether it is the
        step before one (weights are snapshot after it), and its 1-based number."""
        if self.eager_gate and not (self.sampling or self.snapshotting):
            return False, False, None
        counter = kopt.counting_optimizer(optimizer)
        k = kopt.accumulation_steps(optimizer)
        done = counter._iterations + 1
        step = done // k if k > 1 else done
        if self.eager_gate:
            return self.sampling, self.snapshotting, step
        phase = step % self.interval
        sampled, snapshot = ops.equal(phase, 0), ops.equal(phase, (self.interval - 1) % self.interval)
        if k > 1:
            update = ops.equal(done % k, 0)
            sampled, snapshot = ops.logical_and(update, sampled), ops.logical_and(update, snapshot)
        return sampled, snapshot, step

    def _when(self, sampled, fn) -> None:  # noqa: ANN001
        """Run ``fn`` on a sampled step: a Python ``if`` (torch) or an ``ops.cond`` in the graph."""
        if isinstance(sampled, bool):
            if sampled:
                fn()
            return
        ops.cond(sampled, fn, _nothing)

    def around_apply(self, optimizer, apply, grads, trainable_variables=None):  # noqa: ANN001, ANN201
        """Statistics of this step around the real ``apply`` (called by the optimizer mixin)."""
        st = self._state()
        outputs, data = st.outputs, st.data
        st.outputs, st.data = {}, None
        grads = list(grads)
        if not optimizer.built and trainable_variables is not None:
            # what `apply` would do first; the statistics need the optimizer's variables now
            with keras.name_scope(optimizer.name, caller=optimizer):
                optimizer.build(list(trainable_variables))
            optimizer.built = True
        variables = list(trainable_variables) if trainable_variables is not None else \
            list(getattr(kopt.counting_optimizer(optimizer), "_trainable_variables", []))
        if self.params is None:  # first step of a model built by its first call
            self._lay_out_params(variables)
            self._allocate(traced=True)
        sampled, snapshot, step = self._gate(optimizer)
        params, buffer, n = self.params, self.buffer, len(self.params.variables)
        scale = params.grad_scale(optimizer) if params.wants_grads else None
        # with gradient accumulation the update resets the accumulators, so read them before it
        early = kopt.accumulation_steps(optimizer) > 1

        def gradients() -> None:  # gradients, activations and the batch of a sampled step
            values = params.grads(optimizer, grads, variables, scale)
            values.update(self.acts.compute(outputs))
            buffer.write(self.pre, values, step)
            if data is not None and self.data.wanted:
                buffer.write(self.data.layout, self.data.compute(data), step)

        def weights() -> None:
            snapshot_step, sumsq = step, None
            if params.snap_sumsq is not None:
                snapshot_step, sumsq = buffer.stamp(self.snap), buffer.block(self.snap, params.snap_sumsq, n)
            buffer.write(self.post, params.weights(step, snapshot_step, sumsq), step)

        def snapshot_weights() -> None:
            previous = buffer.block(self.snap, params.snap_sumsq, n)
            buffer.write(self.snap, params.snapshot(previous, exact=self.eager_gate), step)

        if early:
            self._when(sampled, gradients)
        result = apply(grads, trainable_variables)

        # one cond after the update for everything else: nothing in it delays the update itself
        def sampled_step() -> None:
            if not early:
                gradients()
            if params.wants_weights:
                weights()

        if not params.wants_snapshot:
            self._when(sampled, sampled_step)
            return result

        if isinstance(sampled, bool):
            self._when(sampled, sampled_step)
            self._when(snapshot, snapshot_weights)
            return result

        def both() -> None:  # interval 1: every step is sampled and the step before one
            sampled_step()
            snapshot_weights()

        # one Case op: no nested conds on the steps that run something
        which = ops.cast(sampled, "int32") + 2 * ops.cast(snapshot, "int32")
        ops.switch(which, [_nothing, sampled_step, snapshot_weights, both])
        return result

    # ---- host side -----------------------------------------------------------------------

    def read(self, final: bool = False) -> dict[str, dict[str | None, float]]:
        """Statistics of the latest sampled step not read yet and, when due (or ``final``), the data
        totals since they were last decoded: one host copy."""
        if self.buffer is None:
            return {}
        self._reads += 1
        rows = self.buffer.read()
        stats: dict[str, dict[str | None, float]] = {}
        for layout in self.buffer.layouts:
            if layout is self.data.layout:
                if not (final or self._reads >= self._next_data):
                    continue
                self._data_gap = min(2 * self._data_gap, max(64, self.data_every))
                self._next_data = self._reads + self._data_gap
            stats.update(self.buffer.take(layout, rows))
        ok = stats.pop(RATIO_OK, {}).get(None)
        if ok is not None and ok < 1:  # no snapshot from the step before (e.g. the first sampled step)
            stats.pop("update_ratio", None)
        return {k: v for k, v in stats.items() if not k.startswith("__")}

    def reset_confusion(self) -> None:
        if self.confusion is not None:
            self.confusion.reset()

    def read_confusion(self) -> dict[str | None, float] | None:
        return None if self.confusion is None else self.confusion.read()


def _nothing() -> None:
    return None


def _wrap(obj, name: str, hook) -> None:  # noqa: ANN001
    """Replace ``obj.name`` by ``hook(original, *args)``, over any earlier tripwire wrapper."""
    original = getattr(obj, name)
    while hasattr(original, "_tripwire_original"):
        original = original._tripwire_original

    def wrapper(*args, **kwargs):  # noqa: ANN202
        return hook(original, *args, **kwargs)

    wrapper._tripwire_original = original
    setattr(obj, name, wrapper)


def _unwrap(obj, name: str) -> None:  # noqa: ANN001
    current = vars(obj).get(name)
    if current is None or not hasattr(current, "_tripwire_original"):
        return
    original = current
    while hasattr(original, "_tripwire_original"):
        original = original._tripwire_original
    delattr(obj, name)
    if getattr(obj, name, None) != original:
        setattr(obj, name, original)


