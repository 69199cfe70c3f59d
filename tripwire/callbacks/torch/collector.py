"""`TorchCollector`: computes exactly the statistics the enabled rules need, for any torch loop.

The collector is framework-neutral; :mod:`tripwire.callbacks.lightning` drives it from
Lightning hooks, and a plain PyTorch loop can drive it directly (see the example). Per
training batch the driver calls :meth:`~TorchCollector.begin_batch` (sampled or not),
:meth:`~TorchCollector.before_optimizer_step` for every optimizer step (gradients final:
unscaled, pre-clip), :meth:`~TorchCollector.add_loss`, and, after the step of a sampled batch,
:meth:`~TorchCollector.flush`. Everything between flushes stays on the device: losses are kept
as device scalars, activations and data statistics are added into device accumulators,
gradient/weight statistics are fused reductions. A flush packs everything into one vector,
reduces it across ranks with one collective (when a gather function is set), and starts one
host copy; :meth:`Flush.sample` waits for it and returns the :class:`~tripwire.stats.Sample`.

What each statistic means is in :data:`tripwire.stats.CATALOGUE`; where it comes from:

- ``loss``, ``loss_nonfinite``: :meth:`add_loss` on every batch (mean/count since the last flush).
- ``grad_*``, ``amp_skipped``, ``weight_*``, ``update_ratio``, ``init_*``:
  :class:`~tripwire.callbacks.torch.params.ParamProbe`; trainable parameters that got no
  gradient are named once in a warning (:mod:`~tripwire.callbacks.no_gradient`).
- ``act_*``: :class:`~tripwire.callbacks.torch.activations.ActivationProbe` (forward hooks).
- ``spike_*``: :class:`~tripwire.callbacks.torch.spike.SpikeProbe`, judged at every optimizer step
  by the driver.
- ``label_count``, ``input_*``, ``token_*``: :class:`~tripwire.callbacks.torch.batch.DataProbe`
  on sampled batches.
- ``val_loss``, ``confusion``: :meth:`end_validation`, one sample per validation run.
- ``user/<name>``: :func:`tripwire.observe`.

Failures: every method runs its work under a :class:`~tripwire.failopen.FailOpen` guard (the
monitor's, in the Lightning adapter), one named part at a time (:mod:`~tripwire.callbacks.torch.parts`),
so a failing part is switched off with one warning and no method raises into the training loop
(unless the guard is strict). The methods that hand back a :class:`Flush` do so whatever failed,
so every rank goes on deciding at the same points. :attr:`TorchCollector.failed_shared` says
whether a part that could unbalance the ranks failed; the adapter then switches the collector off
on every rank.

Example (a plain PyTorch loop):
    >>> import torch
    >>> from tripwire.stats import Need
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> col = TorchCollector([Need("loss"), Need("grad_global_norm"), Need("label_count")])
    >>> col.attach(net); col.allocate(torch.device("cpu"))
    >>> for step in range(4):
    ...     x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    ...     col.begin_batch((x, y), sampled=step % 2 == 0)
    ...     loss = torch.nn.functional.cross_entropy(net(x), y)
    ...     opt.zero_grad(); loss.backward()
    ...     col.before_optimizer_step(opt); opt.step()
    ...     col.add_loss(loss)
    ...     if step % 2 == 0:
    ...         sample = col.flush(step=step, epoch=0).sample()
    >>> sorted(sample.stats), sum(sample.stats["label_count"].values())
    (['grad_global_norm', 'label_count', 'loss'], 16.0)
    >>> col.detach()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from tripwire.callbacks.no_gradient import NoGradientNotice
from tripwire.callbacks.torch.activations import ActivationProbe
from tripwire.callbacks.torch.batch import BatchFn, ConfusionProbe, DataProbe, split_batch
from tripwire.callbacks.torch.packing import Gather, Packed, Piece, Series, ops, pack
from tripwire.callbacks.torch.params import INIT_STATS, ParamProbe
from tripwire.callbacks.torch.parts import (
    ACTIVATIONS,
    CONFUSION,
    DATA,
    DETACH,
    FLUSH,
    GRADIENTS,
    INIT,
    LOSS,
    PARAMS,
    SHARED,
    SPIKES,
    USER,
    VAL_LOSS,
    WEIGHTS,
)
from tripwire.callbacks.torch.reductions import tensor_bytes
from tripwire.callbacks.torch.spike import SPIKE_STATS, SpikeProbe
from tripwire.failopen import FailOpen, try_each
from tripwire.observe import drain
from tripwire.stats import ACTIVATION_STATS, Need, Sample


class Flush:
    """A flush on its way to the host; :meth:`sample` waits for the copy and unpacks it.

    ``packed`` is None when packing failed (the sample is then empty); ``read`` unpacks
    (default :meth:`Packed.read`; the collector passes one that runs under its guard).
    """

    def __init__(self, packed: Packed | None, step: int, epoch: int | None,
                 read: Callable[[Packed], Series] | None = None, known: Series | None = None) -> None:
        self.packed, self.step, self.epoch = packed, step, epoch
        self._read = read if read is not None else Packed.read
        self._known = known or {}  # series the host knows without the device (parameter shapes)

    def add_known(self, key: str, values: dict[str | None, float]) -> None:
        """Add a series the host knows without the device (the steps ``skip_step`` left out)."""
        self._known[key] = values

    @property
    def ready(self) -> bool:
        """Whether the host copy has landed (never blocks)."""
        return self.packed is None or self.packed.ready

    def sample(self) -> Sample:
        """The statistics as a :class:`~tripwire.stats.Sample` (blocks until the copy is done)."""
        stats = {} if self.packed is None else self._read(self.packed)
        return Sample(step=self.step, epoch=self.epoch, stats={**self._known, **stats})


def _scalar(value: Any, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().float().reshape(()).to(device, non_blocking=True)
    return torch.full((), float(value), dtype=torch.float32, device=device)


def _with_count(value: Any, device: torch.device) -> torch.Tensor:
    """``[value, 1]``: one value and its count, to be summed across ranks into a mean."""
    return torch.stack([_scalar(value, device), torch.ones((), device=device)])


def _loss_sums(losses: list[torch.Tensor], device: torch.device) -> torch.Tensor:
    """``[sum of the finite losses, their count, count of the others]``; zeros for no loss."""
    if not losses:
        return torch.zeros(3, device=device)
    values = _stack_scalars(losses)
    finite = torch.isfinite(values)
    return torch.stack([torch.where(finite, values, 0.0).sum(), finite.sum().float(), (~finite).sum().float()])


def _stack_scalars(values: list[torch.Tensor]) -> torch.Tensor:
    """``[len(values)]`` float32 from one-element tensors; one op when they are all 0-dim float32
    on one device (the usual training loss), one per value otherwise."""
    try:
        stacked = torch.stack(values)
        if stacked.dim() == 1 and stacked.dtype == torch.float32:
            return stacked
    except RuntimeError:  # mixed shapes or devices
        pass
    return torch.stack([v.float().reshape(()) for v in values])


class TorchCollector:
    """Statistics for a set of needs over a torch model.

    Args:
        needs: what the enabled rules need (``Monitor.needs()``); nothing else is computed.
        batch_fn: optional ``batch -> (inputs, labels)`` for batches :func:`split_batch` cannot read.
        gather: optional ``[K] -> [world, K]`` collective; per-rank statistics (activations, data,
            losses) are reduced through it at every flush. None in a single process.
        guard: runs every part (``monitor.guard`` in the adapters); default: a fresh, non-strict one.
    """

    def __init__(self, needs: Iterable[Need], *, batch_fn: BatchFn | None = None,
                 gather: Gather | None = None, guard: FailOpen | None = None) -> None:
        self.needs = frozenset(needs)
        stats = {n.stat for n in self.needs}
        self.guard = guard if guard is not None else FailOpen()
        self.batch_fn = batch_fn
        self.gather = gather
        self.loss_keys = sorted(stats & {"loss", "loss_nonfinite"})
        self.val_loss = "val_loss" in stats
        self.init = bool(stats & set(INIT_STATS))
        self.data = DataProbe(self.needs)
        self.params: ParamProbe | None = None
        self.activations: ActivationProbe | None = None
        self.confusion = ConfusionProbe(self.guard) if "confusion" in stats else None
        self.spikes = SpikeProbe(self.needs) if stats & set(SPIKE_STATS) else None
        self.no_gradient = NoGradientNotice()
        self.device = torch.device("cpu")
        self.sampling = False
        self.counting_labels = False  # an unsampled batch whose labels are counted (under a budget)
        self._losses: list[torch.Tensor] = []
        self._modules: frozenset[int] = frozenset()
        self._shapes_due = "param_ndim" in stats  # sent with the first flush after attach

    @property
    def failed_shared(self) -> bool:
        """Whether a part that could put this rank out of step with the others failed here
        (:data:`~tripwire.callbacks.torch.parts.SHARED`); under DDP the adapter then switches the
        collector off on every rank at the decision of the current flush."""
        return any(not self.guard.ok(part) for part in SHARED)

    # lifecycle -----------------------------------------------------------------------------------
    def attach(self, module: nn.Module) -> None:
        """Hook ``module`` (before ``torch.compile`` traces it) and index its parameters."""
        self.detach()
        self._modules = frozenset(id(m) for m in module.modules())
        self._shapes_due = any(n.stat == "param_ndim" for n in self.needs)
        self.params = self.guard.call(PARAMS, ParamProbe, module, self.needs)
        if any(n.stat in ACTIVATION_STATS for n in self.needs):
            self.activations = self.guard.call(ACTIVATIONS, ActivationProbe, module, self.needs, self.guard)
        if self.confusion is not None:
            with self.guard.attempt(CONFUSION):
                self.confusion.attach(module)

    def held_bytes(self) -> int:
        """Bytes of the tensors kept between samples: the weight snapshot and the accumulators
        (bounded by the number of tensors, layers and features, not by the size of the model)."""
        held = self.data.held_bytes() + (self.params.held_bytes() if self.params is not None else 0)
        return held + tensor_bytes([self.activations.accumulator if self.activations is not None else None])

    def attached_to(self, module: nn.Module) -> bool:
        """Whether :meth:`attach` saw exactly the submodules ``module`` has now."""
        return self._modules == frozenset(id(m) for m in module.modules())

    def allocate(self, device: torch.device) -> None:
        """Create the device accumulators on the model's device (before its first forward)."""
        self.device = torch.device(device)
        if self.spikes is not None:
            with self.guard.attempt(SPIKES):
                self.spikes.allocate(self.device)
        if self.activations is None:
            return
        with self.guard.attempt(ACTIVATIONS):
            self.activations.allocate(self.device)
        self._drop_failed_activations()

    def _drop_failed_activations(self) -> None:
        """Remove the activation hooks once their accumulator failed (allocating or zeroing it)."""
        if self.activations is not None and not self.guard.ok(ACTIVATIONS):
            probe, self.activations = self.activations, None
            self._remove([probe])

    def detach(self) -> None:
        """Remove every hook; one that cannot be removed does not keep the others."""
        probes = [p for p in (self.activations, self.confusion) if p is not None]
        self.activations = None
        self.sampling = self.counting_labels = False
        self._remove(probes)

    def _remove(self, probes: list[Any]) -> None:
        error = try_each(probes, lambda probe: probe.remove())
        if error is not None:
            self.guard.fail(DETACH, error)

    # training ------------------------------------------------------------------------------------
    def begin_batch(self, batch: Any, sampled: bool, labels: bool = False) -> None:
        """Start a training batch; on sampled ones, turn the hooks on and read the batch's data;
        on the others, its labels only when ``labels`` (:meth:`Schedule.labels_due
        <tripwire.schedule.Schedule.labels_due>`). ``batch=None``: none to read yet, see
        :meth:`add_batch`."""
        self.sampling = sampled
        self.counting_labels = labels and not sampled and self.data.labels
        if self.activations is not None:
            self.activations.active = sampled
        if batch is not None and (sampled or self.counting_labels):
            self.add_batch(batch)

    def add_batch(self, batch: Any) -> None:
        """Read the data of a batch of the step in progress (sampled: all of it; else its labels, when
        they are due): from :meth:`begin_batch`, or from a driver that sees the batch only after its
        forward pass (a plain loop)."""
        if self.sampling and self.data.wanted:
            self.guard.call(DATA, self._add_data, batch)
        elif self.counting_labels:
            self.guard.call(DATA, self._add_labels, batch)

    def _add_data(self, batch: Any) -> None:
        self.data.add(*split_batch(batch, self.batch_fn))

    def _add_labels(self, batch: Any) -> None:
        self.data.add(None, split_batch(batch, self.batch_fn)[1])

    def before_optimizer_step(self, optimizer: Any, scaler: Any = None) -> None:
        """Gradient statistics of a real optimizer step (on sampled batches only)."""
        # they reach the sample through the weight statistics' pieces: nothing to do once those are off
        if self.sampling and self.params is not None and self.params.wanted and self.guard.ok(WEIGHTS):
            self.guard.call(GRADIENTS, self.params.before_step, optimizer, scaler)

    def add_loss(self, loss: Any) -> None:
        """Keep this batch's training loss (a device scalar; nothing is computed until the flush)."""
        # every step runs this: the guard's work written out, without its extra call
        if self.loss_keys and isinstance(loss, torch.Tensor) and self.guard.ok(LOSS):
            try:
                self._losses.append(loss.detach())
            except Exception as exc:  # noqa: BLE001 - switched off with a warning (strict: raised)
                self.guard.fail(LOSS, exc)

    def end_batch(self) -> None:
        """End a training batch: hooks off (validation and other batches cost nothing)."""
        if self.activations is not None:
            self.activations.active = False

    def flush(self, step: int, epoch: int | None = None, extra: Sequence[Piece] = ()) -> Flush:
        """Pack everything since the last flush, reduce across ranks, start the host copy.

        A part that fails is left out of the sample; the pieces that cross ranks are packed
        whatever failed (see :mod:`~tripwire.callbacks.torch.parts`). ``extra``: pieces the driver
        adds (the sampling cost), packed with the gathered ones.
        """
        pieces = self._gathered_pieces() + list(extra) + self._local_pieces(step)
        packed = self.guard.call(FLUSH, pack, pieces, self.gather)
        if self.activations is not None:
            with self.guard.attempt(ACTIVATIONS):
                self.activations.reset()  # after pack: the copy in cat() is already enqueued
            self._drop_failed_activations()
        self.end_batch()
        return Flush(packed, step, epoch, self._read, self._shapes())

    def shapes_sent(self) -> None:
        """``param_ndim`` need not be sent (a resumed run: the rules' restored state has it)."""
        self._shapes_due = False

    def _shapes(self) -> Series:
        """``param_ndim`` of every trainable parameter, once (the first flush after attach)."""
        if not self._shapes_due or self.params is None:
            return {}
        self._shapes_due = False
        return {"param_ndim": {name: float(p.ndim) for name, p in self.params.trainable()}}

    def _read(self, packed: Packed) -> Series:
        return self.guard.call(FLUSH, packed.read, fallback={})

    def _gathered_pieces(self) -> list[Piece]:
        """Losses, activations and data: reduced across ranks, so packed even when their part failed."""
        pieces = self._loss_pieces()
        if self.activations is not None and self.activations.size:
            pieces.append(Piece(self.activations.accumulator, self.activations.ops, self.activations.read))
        with self.guard.attempt(DATA):
            pieces.extend(self.data.pieces())
        if self.spikes is not None:
            pieces.extend(self._spike_pieces())
        return pieces

    def _spike_pieces(self) -> list[Piece]:
        """The spike pieces, packed at every flush (neutral values once their part failed)."""
        try:
            if self.guard.ok(SPIKES):
                return self.spikes.pieces()  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - the pieces keep their place (see tripwire.callbacks.torch.parts)
            self.guard.fail(SPIKES, exc)
        neutral = torch.tensor([0.0, float("-inf"), -1.0], device=self.device)
        return [Piece(neutral.clone(), ops(SPIKE_STATS), lambda v: {}) for _ in self.spikes.settings]  # type: ignore[union-attr]

    def _local_pieces(self, step: int) -> list[Piece]:
        """Gradient, weight and user statistics: the same on every rank, never gathered."""
        pieces: list[Piece] = []
        if self.params is not None and self.params.wanted:
            pieces.extend(self.guard.call(WEIGHTS, self.params.pieces, fallback=[]))
            self.no_gradient.see(self.params.no_gradient, step)
        pieces.extend(self.guard.call(USER, self._user_pieces, fallback=[]))
        return pieces

    def _loss_pieces(self) -> list[Piece]:
        """The loss piece, at every flush while a loss statistic is needed (zeros when no loss came)."""
        if not self.loss_keys:
            return []
        losses, self._losses = self._losses, []
        try:
            values = _loss_sums(losses, self.device)
        except Exception as exc:  # noqa: BLE001 - the piece keeps its place (see tripwire.callbacks.torch.parts)
            self.guard.fail(LOSS, exc)
            values = torch.zeros(3, device=self.device)
        keys = self.loss_keys

        def read(v: list[float]) -> Series:
            out: Series = {}
            if "loss" in keys and v[1] > 0:
                out["loss"] = {None: v[0] / v[1]}
            if "loss_nonfinite" in keys and v[1] + v[2] > 0:
                out["loss_nonfinite"] = {None: v[2]}
            return out

        return [Piece(values, ops(["loss", "loss", "loss_nonfinite"]), read)]  # loss: a (total, count) pair

    def _user_pieces(self) -> list[Piece]:
        observed = drain()
        if not observed:
            return []
        names = sorted(observed)
        values = torch.stack([_scalar(observed[n][0], self.device) / observed[n][1] for n in names])
        return [Piece(values, "same", lambda v: {n: {None: x} for n, x in zip(names, v)})]

    def init_flush(self, step: int = 0, epoch: int | None = 0) -> Flush | None:
        """Initial-weight statistics (``init_*``), once before training; None when not needed
        (whether they are needed, not whether they could be computed, decides)."""
        if not self.init:
            return None
        packed = self.guard.call(INIT, self._init_packed) if self.params is not None else None
        return Flush(packed, step, epoch, lambda p: self.guard.call(INIT, p.read, fallback={}))

    def _init_packed(self) -> Packed:
        return pack(self.params.init_pieces())  # type: ignore[union-attr]

    # validation ----------------------------------------------------------------------------------
    @property
    def validation_wanted(self) -> bool:
        """Whether validation runs produce a sample (``val_loss`` or ``confusion`` needed)."""
        return self.val_loss or self.confusion is not None

    def begin_validation_batch(self) -> None:
        """Keep the model's next output as predictions (confusion only)."""
        if self.confusion is not None and self.guard.ok(CONFUSION):
            self.confusion.begin()

    def validation_batch(self, outputs: Any, batch: Any) -> None:
        """Pair this validation batch's predictions with its labels.

        Predictions are ``outputs["preds"]`` when ``validation_step`` returned a dict with
        ``preds`` and ``target``; otherwise the last output of the model's forward in this step.
        """
        if self.confusion is None:
            return
        self.confusion.capturing = False
        self.guard.call(CONFUSION, self._count_validation, outputs, batch)

    def _count_validation(self, outputs: Any, batch: Any) -> None:
        confusion = self.confusion
        if isinstance(outputs, dict) and isinstance(outputs.get("preds"), torch.Tensor):
            preds, target = outputs["preds"], outputs.get("target")
            if not isinstance(target, torch.Tensor):
                target = split_batch(batch, self.batch_fn)[1]
        else:
            preds, target = confusion.captured, split_batch(batch, self.batch_fn)[1]  # type: ignore[union-attr]
        confusion.add(preds, target)  # type: ignore[union-attr]

    def end_validation(self, val_loss: Any, step: int, epoch: int | None) -> Flush:
        """The sample of one validation run: ``val_loss`` (mean across ranks) and ``confusion``."""
        pieces = []
        if self.confusion is not None:
            with self.guard.attempt(CONFUSION):
                pieces.extend(self.confusion.pieces())
        if self.val_loss:
            pieces.append(Piece(self._val_loss_pair(val_loss), ops(["val_loss", "val_loss"]),  # (total, count)
                                lambda v: {"val_loss": {None: v[0] / v[1]}} if v[1] else {}))
        packed = self.guard.call(FLUSH, pack, pieces, self.gather)
        return Flush(packed, step, epoch, self._read)

    def _val_loss_pair(self, val_loss: Any) -> torch.Tensor:
        """``[val_loss, 1]``, or zeros when there is none or it cannot be read (packed either way)."""
        if val_loss is not None and self.guard.ok(VAL_LOSS):
            try:
                return _with_count(val_loss, self.device)
            except Exception as exc:  # noqa: BLE001 - the piece keeps its place (see tripwire.callbacks.torch.parts)
                self.guard.fail(VAL_LOSS, exc)
        return torch.zeros(2, device=self.device)
