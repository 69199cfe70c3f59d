"""`KerasSpikes`: ``loss_spike``'s judgement inside the compiled train step of Keras ``fit``, at
every optimizer step, and the ``skip_step`` gate on the optimizer's update.

The arithmetic is :mod:`tripwire.callbacks.torch.spike`'s (read its docstring for the why), in
``keras.ops`` on Keras variables: each judged series keeps the logarithms of its last ``window``
values in a ring, NaN in place of a spike; every :data:`REFRESH` values the kept ones give a shift
and a scale::

    z = (log x - median) / scale                     spike = z > limit and log x is finite
    scale = max(1.4826 MAD, (largest - median) / c(n), 0.01)

with the lower median of an even count (as ``torch.nanmedian``) and ``c(n)`` the expected largest
of ``n`` normal draws, a table made on the host. The verdicts are those of
:class:`~tripwire.callbacks.torch.spike.HostSpikeSeries` on the same series (float32 here).

Everything runs in the graph: the ring's position, the refresh schedule and the step number are
variables too, so no step waits for the host. Where it runs: the optimizer's ``apply`` (the
class-swap mixin of :mod:`tripwire.callbacks.keras.optimizer`), which every training step calls,
the model's own train function as much as tripwire's instrumented one; the batch's loss reaches it
through the optimizer's ``scale_loss``, which Keras's ``train_step`` calls with the loss before
the gradients. On JAX that call is inside the gradient's trace, which no value may leave, so
there only the gradient norm is judged; the variables are optimizer variables in the trainer's
state, and a ``cond`` hands out values (:func:`~tripwire.callbacks.keras.jax.when`). The step's verdict gates the update
(:meth:`KerasSpikes.gate`, a ``cond`` as Keras's own ``LossScaleOptimizer`` skips a non-finite
step): a spiking step applies nothing, so the weights, the optimizer's slots (Adam's moments) and
its iteration count stay as they were. The torch backend runs eagerly: there the ``cond`` reads
the verdict on the host (free on the CPU, a sync on a GPU). The count, the largest z and the last
spiking step since the previous read travel to the host at each flush (:meth:`KerasSpikes.read`:
one small read, and a write once a verdict was made; on JAX the write syncs the trainer's state).

Not judged (the collector warns): under ``tf.distribute``, where each replica has its own loss
and the optimizer's update merges the replicas (a ``cond`` around it would have to run in the
cross-replica context, with the replicas' verdicts combined first), and with
``gradient_accumulation_steps``, where ``apply`` runs once per micro-batch.

Example (``skip_step`` in ``fit``: a batch with inputs x1000 at step 40):
    >>> import keras
    >>> from tripwire import KerasTripwire
    >>> from tripwire.kit.data import linear_classes
    >>> from tripwire.kit.keras import mlp
    >>> x, y = linear_classes(n=32 * 60)
    >>> x[40 * 32:41 * 32] *= 1000
    >>> model = mlp(head=None)
    >>> model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> rules = {"loss_spike": {"warmup": 16, "window": 32, "actions": ["alert", "skip_step"]}}
    >>> tw = KerasTripwire({"rules": rules, "interval": 10}, log_dir=False)
    >>> _ = model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[tw])
    tripwire: 2 findings (1 warning, 1 info)
    ...
    >>> [(f.kind, f.step) for f in tw.findings], int(model.optimizer.iterations)
    ([('loss_spike', 40), ('skip_step_effect', 50)], 59)

The judgement alone (a loss of 1.0 +- noise, then one batch at 40):
    >>> import numpy as np
    >>> from keras import ops
    >>> from tripwire.stats import Need
    >>> spikes = KerasSpikes([Need("spike_count", (("series", "loss"), ("warmup", 16), ("window", 32)))])
    >>> losses = 1.0 + 0.05 * np.random.default_rng(0).normal(size=40)
    >>> losses[30] = 40.0
    >>> verdicts = [bool(to_numpy(spikes.judge(ops.convert_to_tensor(v, "float32"), None))) for v in losses]
    >>> [step for step, spiked in enumerate(verdicts) if spiked]
    [30]
    >>> spikes.read()
    {'spike_count[series=loss,warmup=16,window=32]': {None: 1.0}}
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
from keras import ops

from tripwire.callbacks.keras.buffer import to_numpy
from tripwire.spike_history import (
    MAD_TO_SD,
    REFRESH,
    SCALE_FLOOR,
    SPIKE_STATS,
    expected_largest,
    series_needs,
    series_settings,
    series_stats,
    state_key,
)
from tripwire.stats import STEPS_SKIPPED, Need


def _variable(value, name: str, dtype: str = "float32") -> keras.Variable:
    return keras.Variable(np.asarray(value, dtype), trainable=False, dtype=dtype, name=name)


class _Series:
    """The history and the verdicts of one series, in Keras variables. ``eager`` (the torch backend):
    the refresh schedule is a host counter, so that no step reads the device to decide it."""

    def __init__(self, window: int, warmup: int, limit: float, eager: bool = False) -> None:
        self.window, self.warmup, self.limit = window, warmup, float(limit)
        self.eager, self.counted = eager, 0
        self.ring = _variable(np.full(window, np.nan), "tripwire_spike_ring")
        self.written = _variable(0, "tripwire_spike_written", "int32")
        self.shift = _variable(-np.inf, "tripwire_spike_shift")  # z = shift + log x * scale_inv
        self.scale_inv = _variable(0.0, "tripwire_spike_scale_inv")
        self.tally = _variable([0.0, -np.inf, -1.0], "tripwire_spike_tally")  # count, max z, last step
        self.largest = np.array([expected_largest(n) for n in range(window + 1)], "float32")
        self.slots = np.arange(window, dtype="int32")

    @property
    def variables(self) -> list:
        return [self.ring, self.written, self.shift, self.scale_inv, self.tally]

    def judge(self, x, step, when) -> object:
        """This step's verdict on ``x`` (a float32 scalar tensor), a bool tensor; ``step`` its number."""
        log = ops.log(x)
        z = self.shift + log * self.scale_inv
        finite = ops.isfinite(log)
        over = ops.greater(z, self.limit)
        spike = ops.logical_and(over, finite)
        kept = ops.where(ops.logical_and(finite, ops.logical_not(over)), log, np.float32(np.nan))
        position = ops.mod(self.written.value, self.window)
        self.ring.assign(ops.where(ops.equal(self.slots, position), kept, self.ring.value))
        count, max_z, last = self.tally.value[0], self.tally.value[1], self.tally.value[2]
        self.tally.assign(ops.stack([count + ops.cast(spike, "float32"),
                                     ops.where(finite, ops.maximum(max_z, z), max_z),
                                     ops.where(spike, ops.cast(step, "float32"), last)]))
        written = self.written.value + 1
        self.written.assign(written)
        self.counted += 1
        if self.eager:
            if self.counted % REFRESH == 0:
                self.refresh()
        else:
            when(ops.equal(ops.mod(written, REFRESH), 0), self.refresh, [self.shift, self.scale_inv])
        return spike

    def refresh(self) -> None:
        """Recompute the shift and scale from the kept values."""
        ring = self.ring.value
        kept = ops.isfinite(ring)
        n = ops.sum(ops.cast(kept, "int32"))
        middle = ops.maximum((n - 1) // 2, 0)
        ordered = ops.sort(ops.where(kept, ring, np.float32(np.inf)))
        median = ops.take(ordered, middle)
        mad = ops.take(ops.sort(ops.where(kept, ops.abs(ring - median), np.float32(np.inf))), middle)
        largest = ops.take(ordered, ops.maximum(n - 1, 0))
        tail = (largest - median) / ops.take(self.largest, n)
        scale = ops.maximum(ops.maximum(mad * MAD_TO_SD, tail), SCALE_FLOOR)
        ready = ops.greater_equal(n, self.warmup)
        self.scale_inv.assign(ops.where(ready, 1.0 / scale, 0.0))
        self.shift.assign(ops.where(ready, -median / scale, np.float32(-np.inf)))


def _run_when(pred, fn, variables: list) -> None:
    ops.cond(pred, fn, lambda: None)


def _on_torch_cpu() -> bool:
    """Whether Keras runs on the torch backend's CPU device."""
    if keras.backend.backend() != "torch":
        return False
    from keras.src.backend.torch.core import get_device

    return str(get_device()).startswith("cpu")


class KerasSpikes:
    """Every series the ``spike_*`` needs ask for, judged in the compiled train step.

    Args:
        needs: the needs of the enabled rules; those of :data:`SPIKE_STATS` are served.
        skip: whether a spiking step's update is left out (the ``skip_step`` action).
        when: ``when(pred, fn, variables)`` runs ``fn`` (which assigns ``variables``) where
            ``pred`` holds, in the graph (an ``ops.cond`` by default; the JAX form hands out values).
        state: on JAX, the :class:`~tripwire.callbacks.keras.jax.JaxState` whose trainer state holds
            the variables' current values (the host reads them there, and syncs it before a write).
        host: judge in Python floats with :class:`~tripwire.callbacks.torch.spike.HostSpikeSeries`
            (the torch backend on the CPU, where reading a value waits for nothing and a dozen
            float operations cost less than as many eager operations on 0-d tensors); None: so on
            the torch backend's CPU device.
    """

    def __init__(self, needs: Iterable[Need], *, skip: bool = False, when=_run_when, state=None,
                 host: bool | None = None) -> None:
        self.needs = [n for n in needs if n.stat in SPIKE_STATS]
        settings = series_settings(self.needs)
        eager = keras.backend.backend() == "torch"
        self.host = _on_torch_cpu() if host is None else bool(host)
        if self.host:
            from tripwire.callbacks.torch.spike import HostSpikeSeries

            self.series = {s: HostSpikeSeries(*s[1:]) for s in settings}
        else:
            self.series = {s: _Series(*s[1:], eager=eager) for s in settings}
        self.skip = bool(skip)
        self.when = when
        self.state = state
        #: optimizer steps judged so far: the number of the step in progress (set by :meth:`start`)
        self.step = 0 if self.host else _variable(0.0, "tripwire_spike_step")
        #: steps whose update was left out since the previous read
        self.skipped = 0.0 if self.host else _variable(0.0, "tripwire_spike_skipped")

    def wants(self, series: str) -> bool:
        """Whether ``series`` (``loss`` or ``grad_norm``) is judged."""
        return any(s[0] == series for s in self.series)

    @property
    def variables(self) -> list:
        """Every variable the compiled step writes."""
        if self.host:
            return []
        return [self.step, self.skipped, *(v for series in self.series.values() for v in series.variables)]

    @property
    def judged(self):
        """Steps judged so far (after :meth:`judge`: the 1-based number of the step in progress)."""
        return self.step if self.host else self.step.value

    def start(self, step: int) -> None:
        """Host side, before training: the number of the first step to come."""
        if self.host:
            self.step = int(step)
        else:
            self._write(self.step, np.float32(step))

    def _value(self, variable) -> np.ndarray:
        return self.state.value(variable) if self.state is not None else to_numpy(variable)

    def _write(self, variable, value) -> None:
        if self.state is not None:
            self.state.sync()
        variable.assign(value)

    def judge(self, loss, grad_norm) -> object | None:
        """Judge the step in progress (in the graph): ``loss`` and ``grad_norm`` are float32 scalar
        tensors or None. The verdict (any judged series spiked), a bool tensor; None when nothing
        was judged."""
        values = {"loss": loss, "grad_norm": grad_norm}
        if self.host:
            return self._judge_on_host(values)
        step = self.step.value
        flag = None
        for (name, *_), series in self.series.items():
            if values[name] is None:
                continue
            spike = series.judge(ops.cast(values[name], "float32"), step, self.when)
            flag = spike if flag is None else ops.logical_or(flag, spike)
        self.step.assign(step + 1.0)
        if flag is not None and self.skip:
            self.skipped.assign(self.skipped.value + ops.cast(flag, "float32"))
        return flag

    def _judge_on_host(self, values: dict) -> bool | None:
        flag = None
        for (name, *_), series in self.series.items():
            if values[name] is not None:
                flag = series.judge(float(values[name]), self.step) or bool(flag)
        self.step += 1
        if flag and self.skip:
            self.skipped += 1.0
        return flag

    def gate(self, flag, apply, variables: list = ()):
        """``apply`` (an optimizer's ``apply(grads, trainable_variables)``, which writes
        ``variables``) gated on the verdict: it runs only on a step that did not spike."""
        def gated(grads, trainable_variables=None) -> None:
            if self.host:
                if not flag:
                    apply(grads, trainable_variables)
                return
            self.when(ops.logical_not(flag), lambda: apply(grads, trainable_variables), variables)

        return gated

    def state_dict(self) -> dict[str, Any]:
        """Each series' history (logarithms, plain Python), keyed by its settings as the torch
        adapters key theirs; one host read per series."""
        out: dict[str, Any] = {}
        for key, series in self.series.items():
            if self.host:
                out[state_key(key)] = series.state_dict()
                continue
            written = int(self._value(series.written))
            out[state_key(key)] = {"ring": [float(v) for v in self._value(series.ring)],
                                            "position": written % series.window, "written": written}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (host side, before training): the histories whose window
        matches, and their shift and scale."""
        for key, series in self.series.items():
            saved = state.get(state_key(key))
            if not isinstance(saved, dict):
                continue
            if self.host:
                series.load_state_dict(saved)
                continue
            ring = saved.get("ring")
            if not isinstance(ring, list) or len(ring) != series.window:
                continue
            written = int(saved.get("written", 0))
            self._write(series.ring, np.asarray(ring, "float32"))
            self._write(series.written, np.int32(written))
            series.counted = written
            series.refresh()

    def read(self) -> dict[str, dict[str | None, float]]:
        """Host side: the statistics since the previous read (count; largest z once a verdict was
        made; last spiking step once a step spiked) and, with ``skip``, :data:`STEPS_SKIPPED`."""
        out: dict[str, dict[str | None, float]] = {}
        for key, series in self.series.items():
            if self.host:
                count, max_z, last = series.take().tolist()
            else:
                count, max_z, last = (float(v) for v in self._value(series.tally))
                if count or max_z > -math.inf:
                    self._write(series.tally, np.array([0.0, -np.inf, -1.0], "float32"))
            out.update(series_stats(series_needs(self.needs, key), count, max_z, last))
        if self.skip:
            if self.host:
                skipped, self.skipped = self.skipped, 0.0
            else:
                skipped = float(self._value(self.skipped))
                if skipped:
                    self._write(self.skipped, np.float32(0.0))
            out[STEPS_SKIPPED] = {None: skipped}
        return out
