"""Label, input and token statistics from the batches ``fit`` trains on, and a confusion matrix
from the validation batches, all computed inside the compiled steps.

The collector sees every training batch in ``train_step(data)`` and every validation batch with
its predictions in ``compute_loss(x, y, y_pred)``, whatever fed ``fit`` (numpy arrays, a
``tf.data.Dataset``, a ``PyDataset``, a generator). Shapes come from the model:

- classes: a single-output classifier compiled with a (sparse) categorical or binary
  cross-entropy loss; ``sparse`` labels are class ids, ``onehot`` labels are argmax-ed, a
  ``binary`` output (one unit) is split at 0.5 (0 for ``from_logits=True``) into classes 0/1;
- features: float inputs per feature (last axis; channels for ``channels_first`` images), as
  the first learned layer sees them: the model's own leading ``Rescaling`` / ``Normalization``
  layers are applied first (raw pixels in [0, 255] behind ``Rescaling(1/255)`` are scaled
  data); integer inputs count tokens instead.

Data that never passes through ``train_step`` (a custom training loop) can be handed to the
callback instead; :func:`host_stats` and :func:`host_confusion` compute the same series with
numpy.

Example:
    >>> import numpy as np
    >>> from tripwire.stats import Need
    >>> spec = LabelSpec("sparse", 3)
    >>> host_stats([(np.ones((4, 2)), np.array([0, 2, 2, 2]))], spec, [Need("label_count")])
    {'label_count': {'0': 1.0, '1': 0.0, '2': 3.0}}
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from tripwire.callbacks.keras import math as km
from tripwire.callbacks.keras.buffer import (
    Layout,
    combine_replicas,
    local_values,
    make_variable,
    reduction,
    reset,
    to_numpy,
)
from tripwire.stats import INPUT_STATS, MAX_CLASSES, Need, one_label_per_example, token_keys

log = logging.getLogger("tripwire")

MAX_FEATURES = 4096  # per-feature input statistics are skipped for wider inputs
MAX_CONFUSION_CLASSES = 256


@dataclass(frozen=True)
class LabelSpec:
    """How labels and predictions of a classifier map to class ids."""

    kind: str  # sparse | onehot | binary
    classes: int
    threshold: float = 0.5  # binary only


def _loss_name(loss) -> tuple[str, object]:
    """Normalized name of a compiled loss (``sparsecategoricalcrossentropy``) and the object."""
    if isinstance(loss, str):
        return loss.replace("_", "").lower(), loss
    fn = getattr(loss, "fn", None)
    name = getattr(fn, "__name__", None) or getattr(loss, "name", None) or getattr(loss, "__name__", None) \
        or type(loss).__name__
    return str(name).replace("_", "").lower(), loss


def _from_logits(loss) -> bool:
    if getattr(loss, "from_logits", None) is not None:
        return bool(loss.from_logits)
    kwargs = getattr(loss, "_fn_kwargs", None) or {}
    return bool(kwargs.get("from_logits", False))


def output_width(model) -> int | None:
    """Last dimension of a single-output model's output, or None."""
    try:
        outputs = list(model.outputs or [])
    except (AttributeError, ValueError):
        return None
    if len(outputs) != 1 or outputs[0].shape[-1] is None:
        return None
    return int(outputs[0].shape[-1])


def label_spec(model) -> LabelSpec | None:
    """The :class:`LabelSpec` of a single-output cross-entropy classifier, else None."""
    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return None
    name, obj = _loss_name(loss)
    width = output_width(model)
    if width is None or "crossentropy" not in name:
        return None
    if name.startswith("sparsecategorical"):
        return LabelSpec("sparse", width) if width > 1 else None
    if name.startswith("categorical"):
        return LabelSpec("onehot", width) if width > 1 else None
    if name.startswith("binary") and width == 1:
        return LabelSpec("binary", 2, 0.0 if _from_logits(obj) else 0.5)
    return None


def feature_axis(rank: int) -> int:
    """Axis holding the features of an input of this rank."""
    return 1 if rank >= 4 and keras.config.image_data_format() == "channels_first" else -1


class DataStats:
    """Per-class label counts and per-feature input statistics of sampled training batches.

    Its slots are in a layout of their own, kept as a running total (counts and sums add up,
    minima and maxima keep the extremes) so the host can read them less often than the rest.
    """

    def __init__(self, model, needs: Iterable[Need], spec: LabelSpec | None) -> None:
        needs = list(needs)
        self.layout = layout = Layout("data", accumulate=True)
        stats = {n.stat for n in needs}
        self.spec = spec
        self.labels = None
        if "label_count" in stats and spec is not None and spec.classes <= MAX_CLASSES:
            self.labels = layout.add_block("label_count", [str(c) for c in range(spec.classes)],
                                           reduction("label_count"))
        self.inputs: list[tuple[int, int, dict[str, int]]] = []  # (input index, feature axis, {stat: slot})
        self.token_keys = token_keys(needs)
        self.tokens = sorted(self.token_keys)
        self.token_slots: dict[int, list[int]] = {}  # token id -> the slots of its keys (one count each)
        self.token_total = None
        specs = _input_specs(model)
        self.preprocess = {j: leading_preprocessing(model, j) for j in range(len(specs))}
        many = len(specs) > 1
        wants_inputs = [s for s in INPUT_STATS if s in stats]
        for j, (shape, dtype) in enumerate(specs):
            if "int" in dtype and (self.tokens or "token_total" in stats):
                for t in self.tokens:
                    if t not in self.token_slots:
                        self.token_slots[t] = [layout.add(key, None, reduction("token_count"))
                                               for key in self.token_keys[t]]
                if "token_total" in stats and self.token_total is None:
                    self.token_total = layout.add("token_total", None, reduction("token_total"))
            elif "float" in dtype and wants_inputs:
                axis = feature_axis(len(shape))
                width = 1 if len(shape) < 2 else shape[axis]
                if width is None or width > MAX_FEATURES:
                    log.info("tripwire: input %d has %s features; per-feature input statistics skipped", j, width)
                    continue
                names = [f"{j}:{f}" if many else str(f) for f in range(width)]
                self.inputs.append((j, axis, {s: layout.add_block(s, names, reduction(s)) for s in wants_inputs}))
        self.token_inputs = [j for j, (_, dtype) in enumerate(specs) if "int" in dtype]

    @property
    def stats(self) -> set[str]:
        """The statistics laid out (``label_count``, ``input_sum``, ...)."""
        return {slot.key.split("[")[0] for slot in self.layout.slots[1:]}

    @property
    def wanted(self) -> bool:
        return bool(self.labels is not None or self.inputs or self.token_slots or self.token_total is not None)

    def compute(self, data) -> dict[int, object]:  # the batch given to train_step
        """``{first slot: vector}`` for one training batch."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        xs = keras.tree.flatten(x)
        values: dict[int, object] = {}
        if (self.labels is not None and y is not None and not isinstance(y, (dict, list, tuple))
                and one_label_per_example(tuple(y.shape), onehot=self.spec.kind == "onehot")):
            values[self.labels] = km.counts(km.class_ids(y, self.spec.kind, self.spec.threshold), self.spec.classes)
        for j, axis, slots in self.inputs:
            if j >= len(xs):
                continue
            stats = dict(zip(INPUT_STATS, km.feature_stats(preprocessed(xs[j], self.preprocess.get(j, ())), axis)))
            for stat, slot in slots.items():
                values[slot] = stats[stat]
        ints = [xs[j] for j in self.token_inputs if j < len(xs)]
        if ints:
            for t, slots in self.token_slots.items():
                count = ops.sum(ops.stack([ops.sum(ops.cast(ops.equal(v, t), "float32")) for v in ints]))
                values.update({slot: count for slot in slots})
            if self.token_total is not None:
                values[self.token_total] = ops.sum(ops.stack([ops.sum(ops.ones_like(v, "float32")) for v in ints]))
        return values


#: Layers that only rescale their input, elementwise: statistics are taken after them.
PREPROCESSING = (keras.layers.Rescaling, keras.layers.Normalization)


def leading_preprocessing(model, j: int) -> list:
    """The chain of :data:`PREPROCESSING` layers that input ``j`` alone passes through first.

    A ``Sequential([Input, Rescaling(1/255), Conv2D, ...])`` gives ``[Rescaling]``; an input that
    goes straight to a learned layer, or to several layers, gives ``[]``.
    """
    try:
        tensor = keras.tree.flatten(model.inputs)[j]
        chain = []
        while True:
            users = [(layer, node) for layer in model.layers for node in getattr(layer, "_inbound_nodes", ())
                     if any(t is tensor for t in keras.tree.flatten(node.input_tensors))]
            if len(users) != 1 or not isinstance(users[0][0], PREPROCESSING):
                return chain
            layer, node = users[0]
            outputs = keras.tree.flatten(node.output_tensors)
            chain.append(layer)
            if len(outputs) != 1:
                return chain
            tensor = outputs[0]
    except (AttributeError, IndexError, TypeError, ValueError):
        return []


def preprocessed(x, layers) -> object:
    """``x`` through ``layers`` (see :func:`leading_preprocessing`)."""
    for layer in layers:
        x = layer(x)
    return x


def _input_specs(model) -> list[tuple[tuple, str]]:
    """``(shape, dtype)`` of each model input, or [] when the model does not declare them."""
    try:
        inputs = keras.tree.flatten(model.inputs or [])
    except (AttributeError, ValueError):
        return []
    return [(tuple(t.shape), str(t.dtype)) for t in inputs]


class Confusion:
    """True-vs-predicted counts over one validation run, accumulated in a ``C*C`` variable."""

    def __init__(self, spec: LabelSpec, strategy) -> None:
        self.spec = spec
        self.strategy = strategy
        self.variable = make_variable((spec.classes * spec.classes,), "tripwire_confusion", strategy)

    def add(self, y, y_pred) -> None:  # in the traced test step
        c = self.spec.classes
        truth = km.class_ids(y, self.spec.kind, self.spec.threshold)
        pred = km.class_ids(y_pred, "binary" if self.spec.kind == "binary" else "onehot", self.spec.threshold)
        self.variable.assign_add(km.counts(truth * c + pred, c * c))

    def reset(self) -> None:
        reset(self.variable, self.strategy)

    def read(self) -> dict[str | None, float]:
        """``{"t,p": count}`` combined over replicas (summed; one host copy per replica)."""
        rows = np.stack([to_numpy(v).astype(np.float64) for v in local_values(self.variable, self.strategy)])
        total = combine_replicas(rows, reduction("confusion"))
        return matrix_series(total.reshape(self.spec.classes, self.spec.classes))


def matrix_series(matrix: np.ndarray) -> dict[str | None, float]:
    """``{"t,p": count}`` of the non-empty cells of a confusion matrix (rows: true classes)."""
    return {f"{t},{p}": float(matrix[t, p]) for t, p in zip(*np.nonzero(matrix))}


# ---- data handed to the callback explicitly, computed on the host with numpy ----

def batches(data) -> Iterator[tuple[object, object]]:
    """``(x, y)`` pairs from ``(x, y)`` arrays or an iterable of ``(x, y[, w])`` batches."""
    if isinstance(data, (tuple, list)) and len(data) in (2, 3) and hasattr(data[0], "shape"):
        yield data[0], data[1]
        return
    for batch in data:
        x, y, _ = keras.utils.unpack_x_y_sample_weight(tuple(batch) if isinstance(batch, list) else batch)
        yield x, y


def _np(x) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else to_numpy(x)


def _ids(y: np.ndarray, kind: str, threshold: float) -> np.ndarray:
    if kind == "onehot":
        return y.reshape(-1, y.shape[-1]).argmax(-1)
    if kind == "binary":
        return (y.reshape(-1) >= threshold).astype(np.int64)
    return y.reshape(-1).astype(np.int64)


def host_stats(data, spec: LabelSpec | None, needs: Iterable[Need], model=None) -> dict[str, dict[str | None, float]]:
    """Label counts and input statistics of explicitly given training data (inputs after the
    ``model``'s leading preprocessing layers, when a model is given)."""
    needs = list(needs)
    stats = {n.stat for n in needs}
    tokens = token_keys(needs)
    out: dict[str, dict[str | None, float]] = {}

    def add(key: str, subject: str | None, value: float, stat: str) -> None:
        """Add one batch's value, combined with the batches before by the statistic's reduction."""
        series = out.setdefault(key, {})
        old = series.get(subject)
        series[subject] = value if old is None else float(combine_replicas(np.array([old, value]), reduction(stat)))

    for x, y in batches(data):
        if ("label_count" in stats and spec is not None and y is not None
                and one_label_per_example(np.shape(y), onehot=spec.kind == "onehot")):
            found = np.bincount(np.clip(_ids(_np(y), spec.kind, spec.threshold), 0, None), minlength=spec.classes)
            for c in range(spec.classes):
                add("label_count", str(c), float(found[c]), "label_count")
        xs = keras.tree.flatten(x)
        if model is not None:
            xs = [preprocessed(v, leading_preprocessing(model, j)) if np.issubdtype(_np(v).dtype, np.floating) else v
                  for j, v in enumerate(xs)]
        xs = [_np(v) for v in xs]
        for j, v in enumerate(xs):
            prefix = f"{j}:" if len(xs) > 1 else ""
            if np.issubdtype(v.dtype, np.integer):
                for t, keys in tokens.items():
                    for key in keys:
                        add(key, None, float(np.sum(v == t)), "token_count")
                if "token_total" in stats:
                    add("token_total", None, float(v.size), "token_total")
            elif np.issubdtype(v.dtype, np.floating) and any(s in stats for s in INPUT_STATS):
                rows = np.moveaxis(v, feature_axis(v.ndim), -1).reshape(-1, v.shape[feature_axis(v.ndim)]) \
                    if v.ndim >= 2 else v.reshape(-1, 1)
                if rows.shape[1] > MAX_FEATURES:
                    continue
                rows = rows.astype(np.float64)
                per = {"input_count": np.full(rows.shape[1], rows.shape[0], np.float64), "input_sum": rows.sum(0),
                       "input_sumsq": np.square(rows).sum(0), "input_min": rows.min(0), "input_max": rows.max(0)}
                for stat in INPUT_STATS:
                    if stat in stats:
                        for f in range(rows.shape[1]):
                            add(stat, f"{prefix}{f}", float(per[stat][f]), stat)
    return out


def host_confusion(model, data, spec: LabelSpec) -> dict[str | None, float]:
    """Confusion counts of ``model``'s predictions on explicitly given validation data."""
    c = spec.classes
    matrix = np.zeros((c, c), np.float64)
    pred_kind = "binary" if spec.kind == "binary" else "onehot"
    for x, y in batches(data):
        y_pred = _np(model.predict(x, verbose=0))
        t = _ids(_np(y), spec.kind, spec.threshold)
        p = _ids(y_pred, pred_kind, spec.threshold)
        keep = (t >= 0) & (t < c)
        np.add.at(matrix, (t[keep], p[keep]), 1.0)
    return matrix_series(matrix)
