"""Data statistics from training batches and a confusion matrix from validation predictions.

:func:`split_batch` finds the inputs and labels of a batch: ``(x, y)`` tuples/lists, dicts
with common keys (``input_ids``, ``x``, ``inputs``, ... and ``labels``, ``y``, ``target``, ...),
or whatever a user's ``batch_fn(batch) -> (inputs, labels)`` returns.

:class:`DataProbe` accumulates, on sampled training batches and on the device: class counts
of integer labels (CPU labels on the host: :class:`~tripwire.callbacks.torch.label_tally.LabelTally`),
per-feature count/sum/sum of squares/min/max of float inputs (features: last dimension, or
channels for ``(N, C, H, W)`` images), and token counts of integer inputs.
:class:`ConfusionProbe` accumulates true-vs-predicted counts over one validation run.

Example:
    >>> import torch
    >>> from tripwire.stats import Need
    >>> probe = DataProbe([Need("label_count")])
    >>> probe.add(*split_batch((torch.randn(4, 3), torch.tensor([0, 1, 1, 1]))))
    >>> [p.read(p.values.tolist()) for p in probe.pieces()]
    [{'label_count': {'0': 1.0, '1': 3.0}}]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import torch

from tripwire.callbacks.torch.label_tally import LabelTally
from tripwire.callbacks.torch.packing import Piece, Series, op, ops
from tripwire.callbacks.torch.parts import CONFUSION
from tripwire.callbacks.torch.reductions import (
    add_class_counts,
    class_counts,
    feature_axis_size,
    feature_stats,
    host_readable,
    tensor_bytes,
)
from tripwire.failopen import FailOpen
from tripwire.stats import INPUT_STATS, MAX_CLASSES, Need, one_label_per_example, token_keys

log = logging.getLogger("tripwire")

INPUT_KEYS = ("input_ids", "x", "inputs", "input", "features", "image", "images", "pixel_values")
LABEL_KEYS = ("labels", "label", "y", "target", "targets")
MAX_FEATURES = 4096  # per-feature input statistics are skipped for wider inputs
MAX_CONFUSION_CLASSES = 256
#: input statistics reach the rules at flushes 1, 2, 4, ..., INPUT_GAP_MAX, then every INPUT_GAP_MAX-th:
#: a wide input is thousands of per-feature values to unpack, judge and record on the host
INPUT_GAP_MAX = 64
#: the input statistics a due flush carries are measured on the sampled batches of that flush and
#: the INPUT_WINDOW - 1 flushes before it (rows enough for per-feature moments; the other batches
#: cost nothing)
INPUT_WINDOW = 8
INT_PRED_CLASSES = 64  # class ids >= this are skipped when predictions are ids and no logits were seen

BatchFn = Callable[[Any], tuple[Any, Any]]


def _tensor(value: Any) -> torch.Tensor | None:
    return value if isinstance(value, torch.Tensor) else None


def split_batch(batch: Any, batch_fn: BatchFn | None = None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """``(inputs, labels)`` of a batch; either is None when it cannot be found.

    Example:
        >>> import torch
        >>> x, y = split_batch({"input_ids": torch.zeros(2, 5, dtype=torch.long), "labels": torch.ones(2)})
        >>> tuple(x.shape), tuple(y.shape)
        ((2, 5), (2,))
    """
    if batch_fn is not None:
        inputs, labels = batch_fn(batch)
    elif isinstance(batch, torch.Tensor):
        inputs, labels = batch, None
    elif isinstance(batch, Mapping):
        inputs = next((batch[k] for k in INPUT_KEYS if k in batch), None)
        labels = next((batch[k] for k in LABEL_KEYS if k in batch), None)
    elif isinstance(batch, (list, tuple)) and batch:
        inputs, labels = batch[0], batch[1] if len(batch) > 1 else None
    else:
        inputs, labels = None, None
    return _tensor(inputs), _tensor(labels)


def inputs_due(flush: int) -> bool:
    """Whether the ``flush``-th flush (from 1) carries input statistics: flushes 1, 2, 4, 8, ...,
    :data:`INPUT_GAP_MAX`, then every :data:`INPUT_GAP_MAX`-th. A data problem is seen at the first
    flushes, and wide inputs stop costing host time at every flush.

    Example:
        >>> [f for f in range(1, 200) if inputs_due(f)]
        [1, 2, 4, 8, 16, 32, 64, 128, 192]
    """
    return flush % INPUT_GAP_MAX == 0 or (flush & (flush - 1)) == 0


def inputs_measured(flush: int) -> bool:
    """Whether the sampled batches of the ``flush``-th flush add to the input statistics: those of
    the :data:`INPUT_WINDOW` flushes up to each due one (:func:`inputs_due`).

    Example:
        >>> all(inputs_measured(f) for f in range(1, 17))
        True
        >>> [f for f in range(17, 200) if inputs_measured(f)]  # doctest: +NORMALIZE_WHITESPACE
        [25, 26, 27, 28, 29, 30, 31, 32, 57, 58, 59, 60, 61, 62, 63, 64, 121, 122, 123, 124, 125, 126,
         127, 128, 185, 186, 187, 188, 189, 190, 191, 192]
    """
    return any(inputs_due(f) for f in range(flush, flush + INPUT_WINDOW))


@lru_cache(maxsize=8)  # the same few widths at every flush; thousands of elements for wide inputs
def _input_ops(features: int) -> tuple[str, ...]:
    """How each element of the input statistics' piece combines across ranks: ``features``
    elements per statistic of :data:`~tripwire.stats.INPUT_STATS`, statistic after statistic.

    Example:
        >>> _input_ops(2)
        ('sum', 'sum', 'sum', 'sum', 'sum', 'sum', 'min', 'min', 'max', 'max')
    """
    return tuple(ops([s for s in INPUT_STATS for _ in range(features)]))


@lru_cache(maxsize=16)
def _numbered(n: int) -> tuple[str, ...]:
    """The subjects of ``n`` classes or input features: ``"0"``, ``"1"``, ...

    Example:
        >>> _numbered(3)
        ('0', '1', '2')
    """
    return tuple(map(str, range(n)))


def _is_float(t: torch.Tensor) -> bool:
    return t.is_floating_point()


def _is_int(t: torch.Tensor) -> bool:
    return not t.is_floating_point() and not t.is_complex() and t.dtype != torch.bool


class DataProbe:
    """Label, input and token statistics of sampled training batches, kept on the device.

    Args:
        needs: the data needs (others are ignored): ``label_count``, ``input_*``,
            ``token_count`` (option ``token``) and ``token_total``.
    """

    def __init__(self, needs: Iterable[Need]) -> None:
        needs = set(needs)
        self.labels = any(n.stat == "label_count" for n in needs)
        self.input_stats = sorted({n.stat for n in needs if n.stat in INPUT_STATS})
        self.token_keys = token_keys(needs)  # the token ids counted, and the keys of each one's count
        self.tokens = sorted(self.token_keys)
        self.token_total = any(n.stat == "token_total" for n in needs)
        self.capacity = 32  # label classes counted; grows from the largest label seen
        self.classes_seen = 0  # report classes 0..classes_seen-1 (a class missing so far counts 0)
        self._label_acc: torch.Tensor | None = None  # class counts of labels on an accelerator
        self._label_tally: LabelTally | None = None  # ... and of CPU labels, counted on the host
        self._input_acc: torch.Tensor | None = None
        self._token_acc: torch.Tensor | None = None
        self._warned: set[str] = set()
        self._flushes = 0

    @property
    def wanted(self) -> bool:
        """Whether any data statistic is needed at all."""
        return bool(self.labels or self.input_stats or self.tokens or self.token_total)

    def held_bytes(self) -> int:
        """Bytes of the accumulators kept until the next flush (classes, features, tokens)."""
        return tensor_bytes([self._label_acc, self._input_acc, self._token_acc])

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("tripwire: %s", message)

    def add(self, inputs: torch.Tensor | None, labels: torch.Tensor | None) -> None:
        """Accumulate one batch (called on sampled training batches only).

        When this raises (a device out of memory, say), every accumulator the batch would have
        started exists anyway, holding neutral values, so the next flush packs the same pieces as
        the other ranks do (see :mod:`tripwire.callbacks.torch.parts`).
        """
        try:
            self._add(inputs, labels)
        except Exception:
            self._keep_layout(inputs, labels)
            raise

    def _counts_labels(self, labels: torch.Tensor | None) -> bool:
        return (self.labels and labels is not None and _is_int(labels) and self.capacity <= MAX_CLASSES
                and one_label_per_example(tuple(labels.shape)))

    def _measures_inputs(self, inputs: torch.Tensor) -> bool:
        return bool(self.input_stats) and _is_float(inputs) and inputs_measured(self._flushes + 1)

    def _counts_tokens(self, inputs: torch.Tensor) -> bool:
        return bool(self.tokens or self.token_total) and _is_int(inputs)

    def _add(self, inputs: torch.Tensor | None, labels: torch.Tensor | None) -> None:
        if self._counts_labels(labels):
            if host_readable(labels):
                self._label_tally = self._label_tally or LabelTally()
                self._label_tally.add(labels)
            elif self._label_acc is None:
                self._label_acc = class_counts(labels, self.capacity)
            else:
                add_class_counts(self._label_acc, class_counts(labels, self.capacity))
        if inputs is None or inputs.numel() == 0:
            return
        if self._measures_inputs(inputs):
            self._add_inputs(inputs)
        if self._counts_tokens(inputs):
            values = [(inputs == t).sum() for t in self.tokens]
            values.append(torch.full((), inputs.numel(), device=inputs.device, dtype=torch.float32))
            batch = torch.stack(values).float()
            self._token_acc = batch if self._token_acc is None else self._token_acc.add_(batch)

    def _keep_layout(self, inputs: torch.Tensor | None, labels: torch.Tensor | None) -> None:
        """Neutral accumulators for what a failed batch would have started: no class, no row, no token."""
        try:
            if self._label_acc is None and self._label_tally is None and self._counts_labels(labels):
                if host_readable(labels):  # type: ignore[arg-type]
                    self._label_tally = LabelTally()  # no class, no largest label: becomes [0, ..., 0, -1]
                else:  # on the labels' device, as the other pieces of the flush
                    self._label_acc = torch.zeros(self.capacity + 1, device=labels.device)  # type: ignore[union-attr]
                    self._label_acc[-1] = -1.0  # largest label: none
            if inputs is None or inputs.numel() == 0:
                return
            features = feature_axis_size(inputs)
            if self._input_acc is None and self._measures_inputs(inputs) and features <= MAX_FEATURES:
                acc = torch.zeros(5, features, device=inputs.device)
                acc[3], acc[4] = float("inf"), float("-inf")
                self._input_acc = acc
            if self._token_acc is None and self._counts_tokens(inputs):
                self._token_acc = torch.zeros(len(self.tokens) + 1, device=inputs.device)
        except Exception:  # noqa: BLE001, S110 - the caller reports the batch's own error
            pass

    def _add_inputs(self, inputs: torch.Tensor) -> None:
        features = feature_axis_size(inputs)
        if features > MAX_FEATURES:
            self._warn("wide", f"inputs have {features} features (> {MAX_FEATURES}); per-feature input "
                               "statistics are skipped")
            return
        stats = feature_stats(inputs)
        acc = self._input_acc
        if acc is None:
            self._input_acc = stats
        elif acc.shape != stats.shape:
            self._warn("shape", f"input features changed from {acc.shape[1]} to {features}; batches with the "
                                "new width are left out of the input statistics")
        else:
            acc[:3] += stats[:3]
            torch.minimum(acc[3], stats[3], out=acc[3])
            torch.maximum(acc[4], stats[4], out=acc[4])

    def pieces(self) -> list[Piece]:
        """Pieces for the next flush (what was accumulated since the last one taken), then reset.

        Labels and tokens go into every flush; input statistics sum on the device over the
        batches :func:`inputs_measured` picks and go into the flushes :func:`inputs_due` picks.
        The schedule counts flushes only, so every rank of a distributed run packs the same pieces.
        """
        out = []
        self._flushes += 1
        acc = self._take_labels()
        if acc is not None:
            # the last element is the largest label seen (bookkeeping: the largest over the ranks)
            out.append(Piece(acc, [op("label_count")] * (acc.numel() - 1) + ["max"], self._read_labels))
        if self._input_acc is not None and inputs_due(self._flushes):
            acc, self._input_acc = self._input_acc, None
            out.append(Piece(acc.reshape(-1), _input_ops(acc.shape[1]), self._read_inputs))
        if self._token_acc is not None:
            acc, self._token_acc = self._token_acc, None
            out.append(Piece(acc, ops(["token_count"] * len(self.tokens) + ["token_total"]), self._read_tokens))
        return out

    def _take_labels(self) -> torch.Tensor | None:
        """The class counts since the last flush (on the device, or tallied on the host), then reset."""
        acc, self._label_acc = self._label_acc, None
        tally, self._label_tally = self._label_tally, None
        if tally is None:
            return acc
        counted = tally.vector(self.capacity)
        if acc is None:
            return counted
        add_class_counts(acc, counted.to(acc.device))  # labels on both the host and a device: unusual
        return acc

    def _read_labels(self, values: list[float]) -> Series:
        largest = int(values[-1])
        if largest < 0:  # no label in this window (on any rank)
            return {}
        if largest >= self.capacity:  # labels past the capacity were not counted: drop this window
            self.capacity = max(2 * self.capacity, 1 << largest.bit_length())
            if self.capacity > MAX_CLASSES:
                self._warn("classes", f"labels go up to {largest} (> {MAX_CLASSES} classes); class counts "
                                      "are no longer collected")
            return {}
        self.classes_seen = max(self.classes_seen, largest + 1)
        return {"label_count": dict(zip(_numbered(self.classes_seen), values))}

    def _read_inputs(self, values: list[float]) -> Series:
        n = len(values) // 5
        rows = {stat: values[i * n:(i + 1) * n] for i, stat in enumerate(INPUT_STATS)}
        if not any(rows["input_count"]):  # no row measured (on any rank)
            return {}
        names = _numbered(n)
        return {stat: dict(zip(names, rows[stat])) for stat in self.input_stats}

    def _read_tokens(self, values: list[float]) -> Series:
        if not values[-1]:  # no token counted (on any rank)
            return {}
        out: Series = {key: {None: values[i]} for i, t in enumerate(self.tokens) for key in self.token_keys[t]}
        if self.token_total:
            out["token_total"] = {None: values[-1]}
        return out


def _logits(output: Any) -> torch.Tensor | None:
    """The prediction tensor in a model output: a tensor, a ``logits`` attribute/key, or the first item."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        for key in ("logits", "preds", "y_hat", "output"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
        return None
    if isinstance(getattr(output, "logits", None), torch.Tensor):
        return output.logits
    if isinstance(output, (list, tuple)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


class ConfusionProbe:
    """True-vs-predicted counts over one validation run, on the device.

    Predictions come from a forward hook on the LightningModule that keeps the output of the
    last ``self(x)`` call of the validation step (logits ``(N, C)`` or ``(N, T, C)``), or from
    ``{"preds": ..., "target": ...}`` returned by ``validation_step``. Float predictions with a
    class dimension are arg-maxed; a single column is read as a logit (``> 0`` is class 1);
    integer predictions are class ids. Negative targets (ignore_index) are skipped.

    Only a call that makes no nested call of the same module counts: under DDP, Lightning runs
    ``validation_step`` itself as a call of the LightningModule (redirected through the DDP
    wrapper), and that call ends last, with the step's return value as its output.

    Args:
        guard: the hook runs under it as part :data:`~tripwire.callbacks.torch.parts.CONFUSION`
            and never raises into the model's forward (unless strict); default: a fresh one.
    """

    def __init__(self, guard: FailOpen | None = None) -> None:
        self.guard = guard if guard is not None else FailOpen()
        self.capturing = False
        self.captured: torch.Tensor | None = None
        self.classes: int | None = None
        self._acc: torch.Tensor | None = None
        self._open: list[bool] = []  # per call of the module in progress: whether it made a nested one
        self._handles: list = []

    def begin(self) -> None:
        """Keep the module's next outputs (a validation batch starts)."""
        self.capturing, self._open = True, []

    def attach(self, module: torch.nn.Module) -> None:
        """Hook ``module`` (the LightningModule) to keep its last output while capturing."""
        guard = self.guard

        def opened(mod: torch.nn.Module, args: object) -> None:
            if self.capturing:
                if self._open:
                    self._open[-1] = True
                self._open.append(False)

        def hook(mod: torch.nn.Module, args: object, output: object) -> None:
            if not self.capturing:
                return
            nested = self._open.pop() if self._open else False
            if not nested and guard.ok(CONFUSION):
                try:  # a hook that raises would end the user's forward pass
                    self.captured = _logits(output)
                except Exception as exc:  # noqa: BLE001 - switched off with a warning (strict: raised)
                    guard.fail(CONFUSION, exc)

        self._handles = [module.register_forward_pre_hook(opened), module.register_forward_hook(hook)]

    def remove(self) -> None:
        """Remove the hooks."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()

    def _classes(self, preds: torch.Tensor | None, target: torch.Tensor | None) -> tuple[int, bool] | None:
        """(classes, binary logit) from the shapes, or None when the pair cannot be counted."""
        if preds is None or target is None or not _is_int(target):
            return None
        if preds.is_floating_point():
            if preds.shape == target.shape or (preds.dim() == target.dim() + 1 and preds.shape[-1] == 1):
                classes, binary = 2, True
            elif preds.dim() == target.dim() + 1 and preds.shape[:-1] == target.shape:
                classes, binary = preds.shape[-1], False
            else:
                return None
        elif _is_int(preds) and preds.shape == target.shape:
            classes, binary = self.classes or INT_PRED_CLASSES, False
        else:
            return None
        if classes > MAX_CONFUSION_CLASSES or (self.classes is not None and classes != self.classes):
            return None
        return classes, binary

    def add(self, preds: torch.Tensor | None, target: torch.Tensor | None) -> None:
        """Count one validation batch; mismatched or unusable shapes are skipped.

        When counting raises, the run's counts exist anyway (zeros when this was its first
        batch), so the flush packs the same pieces as the other ranks do.
        """
        self.captured = None
        plan = self._classes(preds, target)
        if plan is None:
            return
        classes, binary = plan
        self.classes = classes
        try:
            self._count(preds, target, classes, binary)  # type: ignore[arg-type]
        except Exception:
            if self._acc is None:
                self._acc = torch.zeros(classes * classes, device=target.device)  # type: ignore[union-attr]
            raise

    def _count(self, preds: torch.Tensor, target: torch.Tensor, classes: int, binary: bool) -> None:
        preds, target = preds.detach(), target.detach()
        if not preds.is_floating_point():
            pred = preds
        elif binary:
            pred = (preds.reshape(target.shape) > 0).long()
        else:
            pred = preds.argmax(-1)
        t, p = target.reshape(-1), pred.reshape(-1)
        ok = (t >= 0) & (t < classes) & (p >= 0) & (p < classes)
        cells = torch.where(ok, t * classes + p, 0).long()
        batch = torch.zeros(classes * classes, dtype=torch.float32, device=t.device)
        batch.index_add_(0, cells, ok.float())
        self._acc = batch if self._acc is None else self._acc.add_(batch)

    def pieces(self) -> list[Piece]:
        """The confusion piece of this validation run (if any batch was counted), then reset."""
        if self._acc is None:
            return []
        acc, self._acc, classes = self._acc, None, self.classes

        def read(values: list[float]) -> Series:
            cells = {f"{i // classes},{i % classes}": v for i, v in enumerate(values) if v}
            return {"confusion": cells} if cells else {}

        return [Piece(acc, op("confusion"), read)]
