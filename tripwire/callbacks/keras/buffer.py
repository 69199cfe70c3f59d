"""All statistics of a collector packed into one non-trainable Keras variable.

A :class:`Layout` names the slots of one part (series key, subject, how replicas combine: the
statistic's reduction in :data:`tripwire.stats.CATALOGUE`, :func:`reduction`) before training;
slot 0 of each part holds the optimizer step its values belong to, so the host can tell a fresh
sample from one it has already read. A :class:`PackedBuffer` lays the parts end to end in one
float32 variable: the compiled step writes a part with one ``assign`` and the host reads
everything with **one** copy per flush.

A part with ``accumulate=True`` is a running total between reads instead of the latest
sample: ``sum`` slots add up, ``min``/``max`` slots keep the extremes.

Under ``tf.distribute`` the variable is ``synchronization="on_read"``: each replica writes its
own copy with no communication, and the host combines the copies per slot
(:func:`combine_replicas`: ``sum`` for counts, ``max``/``min`` for extremes and flags, the mean
for ``mean`` and ``same``). On JAX the current value lives in the trainer's state, not in the
variable: a ``state`` (:class:`~tripwire.callbacks.keras.jax.JaxState`) reads it from there.

Example:
    >>> import numpy as np
    >>> grads = Layout("grads")
    >>> grads.add("grad_norm", "dense/kernel", reduction("grad_norm"))
    1
    >>> grads.add("grad_nonfinite", None, reduction("grad_nonfinite"))
    2
    >>> buf = PackedBuffer([grads], strategy=None)
    >>> buf.write(grads, {1: np.float32(0.5), 2: np.float32(0.0)}, stamp=10)
    >>> buf.take(grads, buf.read())
    {'grad_norm': {'dense/kernel': 0.5}, 'grad_nonfinite': {None: 0.0}}
    >>> buf.take(grads, buf.read())   # nothing new since step 10
    {}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
from keras import ops

from tripwire.stats import CATALOGUE

#: How the replicas' copies of a slot combine, per reduction. ``same`` (state every replica shares)
#: is their mean: the value itself for mirrored weights, and the mean of the replicas' own measures
#: for a gradient statistic, which each replica takes before ``MirroredStrategy`` sums the gradients.
_COMBINE = {"sum": np.sum, "max": np.max, "min": np.min, "mean": np.mean, "same": np.mean}


def reduction(stat: str) -> str:
    """The reduction of a statistic's slots: its catalogue reduction.

    Example:
        >>> reduction("label_count"), reduction("act_var"), reduction("grad_norm")
        ('sum', 'mean', 'same')
    """
    return CATALOGUE[stat].reduce


def combine_replicas(rows: np.ndarray, reduce: str) -> np.ndarray:
    """Combine per-replica values ``(replicas, ...)`` with one reduction (over axis 0).

    Example:
        >>> rows = np.array([[1.0, 4.0], [3.0, 2.0]])
        >>> [combine_replicas(rows, how).tolist() for how in ("sum", "min", "same")]
        [[4.0, 6.0], [1.0, 2.0], [2.0, 3.0]]
    """
    return _COMBINE[reduce](rows, axis=0)


@dataclass
class Slot:
    """One value of the packed vector."""

    key: str
    subject: str | None
    reduce: str


@dataclass
class Layout:
    """The slots of one packed vector, in order; slot 0 is the step stamp."""

    name: str
    accumulate: bool = False
    slots: list[Slot] = field(default_factory=lambda: [Slot("__step__", None, "max")])
    #: slots the traced step could not fill (a gradient that is None, a layer not called);
    #: found while tracing, never read.
    dead: set[int] = field(default_factory=set)
    #: series keys dropped from the next decode only (e.g. a comparison with no previous sample)
    skip_once: set[str] = field(default_factory=set)

    def add(self, key: str, subject: str | None, reduce: str) -> int:
        """Append a slot; return its index."""
        self.slots.append(Slot(key, subject, reduce))
        return len(self.slots) - 1

    def add_block(self, key: str, subjects: list[str | None], reduce: str) -> int:
        """Append contiguous slots filled by one vector; return the first index."""
        start = len(self.slots)
        self.slots.extend(Slot(key, s, reduce) for s in subjects)
        return start

    def __len__(self) -> int:
        return len(self.slots)

    def pack(self, values: dict[int, object], stamp):  # backend tensors
        """One float32 vector from ``{first slot: scalar or vector}``; slots nobody filled are
        marked dead and hold 0."""
        pieces = [ops.reshape(ops.cast(stamp, "float32"), (1,))]
        filled = 1
        for start in sorted(values):
            piece = ops.reshape(ops.cast(values[start], "float32"), (-1,))
            if start > filled:
                pieces.append(ops.zeros((start - filled,), "float32"))
                self.dead.update(range(filled, start))
            pieces.append(piece)
            filled = start + int(piece.shape[0])
        if filled < len(self.slots):
            pieces.append(ops.zeros((len(self.slots) - filled,), "float32"))
            self.dead.update(range(filled, len(self.slots)))
        return ops.concatenate(pieces)

    def template(self) -> np.ndarray:
        """Initial values: stamp 0, then zeros (or +-inf for the extremes of a running total)."""
        reduce = np.array([slot.reduce for slot in self.slots])
        out = np.zeros(len(self.slots), "float32")
        if self.accumulate:
            out[reduce == "min"], out[reduce == "max"] = np.inf, -np.inf
        out[0] = 0.0
        return out

    def combine(self, rows: np.ndarray) -> np.ndarray:
        """Combine per-replica rows ``(replicas, slots)`` into one vector."""
        if rows.shape[0] == 1:
            return rows[0]
        reduce = np.array([slot.reduce for slot in self.slots])
        out = np.empty(rows.shape[1], rows.dtype)
        for how in set(reduce.tolist()):
            chosen = reduce == how
            out[chosen] = combine_replicas(rows[:, chosen], how)
        return out

    def decode(self, values: np.ndarray) -> dict[str, dict[str | None, float]]:
        """``{key: {subject: value}}`` from a vector read back (stamp and dead slots left out)."""
        stats: dict[str, dict[str | None, float]] = {}
        numbers = values.tolist()
        for key, slots in self._by_key():
            if key in self.skip_once:
                continue
            stats[key] = {self.slots[i].subject: numbers[i] for i in slots if i not in self.dead}
        self.skip_once.clear()
        return {k: v for k, v in stats.items() if v}

    def _by_key(self) -> list[tuple[str, list[int]]]:
        """Slot indices grouped by series key, in slot order (cached once the layout is complete)."""
        if getattr(self, "_groups", None) is None or self._groups[0] != len(self.slots):
            groups: dict[str, list[int]] = {}
            for i in range(1, len(self.slots)):
                groups.setdefault(self.slots[i].key, []).append(i)
            self._groups = (len(self.slots), list(groups.items()))
        return self._groups[1]


def to_numpy(x) -> np.ndarray:
    """Host copy of a Keras variable or backend tensor (no deprecated ``__array__`` path)."""
    if isinstance(x, keras.Variable):
        x = x.value
    if hasattr(x, "detach"):  # torch
        return x.detach().cpu().numpy()
    if hasattr(x, "read_value") and callable(getattr(x, "value", None)):  # a tf.Variable: one read op
        return np.asarray(x.value().numpy())
    if hasattr(x, "numpy"):  # a tensorflow tensor
        return np.asarray(x.numpy())
    return np.asarray(x)


def make_variable(shape: tuple[int, ...], name: str, strategy, value: np.ndarray | None = None) -> keras.Variable:
    """A float32 variable (zeros unless ``value``) that each replica writes on its own (``on_read``)."""
    initial = np.zeros(shape, "float32") if value is None else value.astype("float32")

    def create() -> keras.Variable:
        return keras.Variable(initial, trainable=False, dtype="float32", name=name,
                              synchronization="on_read", aggregation="mean")

    if strategy is None or _in_replica_context():
        return create()  # inside a replica, the strategy's own variable creator is in force
    with strategy.scope():
        return create()


def _in_replica_context() -> bool:
    import tensorflow as tf

    return tf.distribute.has_strategy() and not tf.distribute.in_cross_replica_context()


def local_values(variable: keras.Variable, strategy) -> list:
    """The per-replica copies of ``variable`` (one element without a strategy)."""
    if strategy is None:
        return [variable.value]
    return list(strategy.experimental_local_results(variable.value))


def reset(variable: keras.Variable, strategy, value: np.ndarray | None = None) -> None:
    """Set every replica's copy to ``value`` (zeros by default)."""
    value = np.zeros(variable.shape, "float32") if value is None else value.astype("float32")
    if strategy is None:
        variable.assign(value)
        return
    for local in local_values(variable, strategy):
        local.assign(value)


def assign_rows(variable: keras.Variable, strategy, rows: np.ndarray) -> None:
    """Host side: set replica ``r``'s copy to ``rows[r]``."""
    if strategy is None:
        variable.assign(rows[0].astype("float32"))
        return
    for local, row in zip(local_values(variable, strategy), rows):
        local.assign(row.astype("float32"))


class PackedBuffer:
    """The layouts of a collector, end to end in one variable."""

    def __init__(self, layouts: list[Layout], strategy, state=None) -> None:
        self.layouts, self.strategy, self.state = list(layouts), strategy, state
        self.offsets: dict[str, int] = {}
        start = 0
        for layout in self.layouts:
            self.offsets[layout.name] = start
            start += len(layout)
        initial = np.concatenate([layout.template() for layout in self.layouts])
        self.variable = make_variable(initial.shape, "tripwire_statistics", strategy, initial)
        self._last = {layout.name: 0.0 for layout in self.layouts}
        reduce = np.array([s.reduce for layout in self.layouts for s in layout.slots])
        self._is_min, self._is_max = reduce == "min", reduce == "max"

    def _span(self, layout: Layout) -> tuple[int, int]:
        start = self.offsets[layout.name]
        return start, start + len(layout)

    # ---- inside the compiled step --------------------------------------------------------

    def write(self, layout: Layout, values: dict[int, object], stamp) -> None:
        """Write one part (this replica's copy); a running total adds to what is there."""
        a, b = self._span(layout)
        new = layout.pack(values, stamp)
        full = self.variable.value
        if layout.accumulate:
            old = full[a:b]
            new = ops.where(self._is_min[a:b], ops.minimum(old, new),
                            ops.where(self._is_max[a:b], ops.maximum(old, new), old + new))
        # a concatenation, not ops.slice_update: TensorFlow runs that one as an XLA op, slower on CPU
        self.variable.assign(ops.concatenate([full[:a], new, full[b:]]))

    def block(self, layout: Layout, start: int, n: int):
        """Slots ``start .. start + n`` of one part, as a tensor."""
        a = self.offsets[layout.name] + start
        return self.variable.value[a:a + n]

    # ---- host side -----------------------------------------------------------------------

    def read(self) -> np.ndarray:
        """Every replica's copy as ``(replicas, slots)``: one host copy per replica."""
        return self._rows()

    def _rows(self) -> np.ndarray:
        if self.state is not None:
            return self.state.value(self.variable)[None].astype(np.float64)
        return np.stack([to_numpy(v) for v in local_values(self.variable, self.strategy)]).astype(np.float64)

    def _assign(self, rows: np.ndarray) -> None:
        if self.state is not None:
            self.state.sync()
        assign_rows(self.variable, self.strategy, rows)

    def take(self, layout: Layout, rows: np.ndarray) -> dict[str, dict[str | None, float]]:
        """Decode one part of ``rows`` if its stamp is newer than the last one taken, else ``{}``.
        A running total is then started again (one host write)."""
        a, b = self._span(layout)
        values = layout.combine(rows[:, a:b])
        if values[0] <= self._last[layout.name]:
            return {}
        self._last[layout.name] = float(values[0])
        if layout.accumulate:
            fresh = rows.astype("float32")
            fresh[:, a:b] = layout.template()
            fresh[:, a] = values[0]
            self._assign(fresh)
        return layout.decode(values)

    def set(self, layout: Layout, values: dict[int, np.ndarray]) -> None:
        """Host side: set blocks ``{first slot: values}`` of one part (its stamp stays)."""
        rows = self._rows().astype("float32")
        a = self.offsets[layout.name]
        for start, block in values.items():
            block = np.asarray(block, "float32").reshape(-1)
            rows[:, a + start:a + start + block.size] = block
        self._assign(rows)
