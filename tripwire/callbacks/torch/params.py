"""Gradient and weight statistics of a model's trainable parameters.

:meth:`ParamProbe.before_step` runs where the gradients of a real optimizer step are final:
unscaled, before clipping, DDP-averaged (Lightning's ``on_before_optimizer_step``). It reduces
them with the fused kernels of :mod:`~tripwire.callbacks.torch.reductions` and, when
``update_ratio`` or ``weight_unchanged`` is needed, snapshots the weights into one buffer kept
across samples: first ``weight_unchanged`` compares the weights with the snapshot (taken at the
previous sampled step), then the weights become the new snapshot. :meth:`ParamProbe.pieces`
runs after the step: weight statistics and ``||Δw|| / ||w||`` against the snapshot (taken in
place, the snapshot restored for the next comparison). One snapshot serves both; it keeps tensors
of up to :data:`~tripwire.element_sample.SNAPSHOT_ELEMENTS` elements whole and a fixed sample of
that many elements of larger ones (:mod:`tripwire.element_sample`), so its memory is bounded per
tensor, not a copy of the model.
Subjects are parameter names from ``named_parameters()``; frozen parameters
(``requires_grad=False``) are left out. So are, from ``update_ratio`` and ``weight_unchanged``,
trainable parameters that an optimizer stepped without a gradient (``.grad is None``: not used
in the loss, such as a head the forward pass skips) on the sampled steps where they had none: they
do not move because nothing asks them to, not because the learning rate is too low. Their names
are in :attr:`ParamProbe.no_gradient` after :meth:`ParamProbe.pieces`.

Sparse gradients are skipped. Dense embedding gradients are mostly zero rows (only the
tokens in the batch get one), so their ``grad_abs_mean`` is taken over the non-zero elements:
a rarely-used vocabulary is not a vanishing gradient.

Example:
    >>> import torch
    >>> from tripwire.stats import Need
    >>> net = torch.nn.Linear(3, 2)
    >>> probe = ParamProbe(net, [Need("grad_norm"), Need("update_ratio")])
    >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> net(torch.randn(8, 3)).square().mean().backward()
    >>> probe.before_step(opt); opt.step()
    >>> stats = {}
    >>> for piece in probe.pieces():
    ...     stats.update(piece.read(piece.values.tolist()))
    >>> sorted(stats), sorted(stats["grad_norm"])
    (['grad_norm', 'update_ratio'], ['bias', 'weight'])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from tripwire.callbacks.torch.element_sample import ElementSample
from tripwire.callbacks.torch.packing import Piece, Reader, Series
from tripwire.callbacks.torch.reductions import (
    abs_sums,
    allclose_flags,
    identical_rows,
    init_gains,
    norms,
    step_ratios,
    tensor_bytes,
    tensor_stats,
    unchanged_flags,
)
from tripwire.stats import Need

GRAD_STATS = {"grad_norm": "norm", "grad_abs_mean": "abs_mean", "grad_zero_frac": "zero_frac", "grad_var": "var"}
WEIGHT_STATS = {"weight_norm": "norm", "weight_zero_frac": "zero_frac", "weight_var": "var",
                "weight_nonfinite": "nonfinite"}
INIT_STATS = ("init_weight_gain", "init_identical_rows")
INIT_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: How the pieces of this module cross ranks: they do not. Every rank of a DDP run holds the same
#: gradients (averaged before they are read), weights and optimizer state, so any catalogue
#: reduction of its values (``max`` for the NaN/Inf flags, the loss scaler's skips and the learning
#: rate; ``same`` for the rest) is the value itself, and no collective is needed.
ON_EVERY_RANK = "same"


def per_subject(keys: Sequence[str], names: Sequence[str]) -> Reader:
    """Reader for a vector holding ``len(names)`` values per key, key after key."""
    keys, names = list(keys), list(names)

    def read(values: list[float]) -> Series:
        n = len(names)
        return {key: dict(zip(names, values[i * n:(i + 1) * n])) for i, key in enumerate(keys)}

    return read


def run_wide(keys: Sequence[str]) -> Reader:
    """Reader for a vector holding one run-wide value per key."""
    keys = list(keys)
    return lambda values: {key: {None: v} for key, v in zip(keys, values)}


def _without(piece: Piece, subjects: Sequence[str]) -> Piece:
    """``piece`` with ``subjects`` left out of what it reads (nothing changes on the device)."""
    if not subjects:
        return piece
    drop, read = set(subjects), piece.read

    def without(values: list[float]) -> Series:
        return {key: {s: v for s, v in series.items() if s not in drop} for key, series in read(values).items()}

    return Piece(piece.values, piece.reduce, without)


def _largest(values: Sequence[float | torch.Tensor], device: torch.device) -> torch.Tensor:
    """The largest of learning rates given as numbers or (capturable optimizers) tensors, as a
    float32 scalar on ``device``; tensors are not read on the host."""
    numbers = [float(v) for v in values if not isinstance(v, torch.Tensor)]
    parts = [v.detach().float().reshape(()).to(device) for v in values if isinstance(v, torch.Tensor)]
    if numbers:
        parts.append(torch.full((), max(numbers), dtype=torch.float32, device=device))
    return torch.stack(parts).amax()


def copy_into(targets: list[torch.Tensor] | None, sources: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Copy ``sources`` into preallocated ``targets`` (allocated on first use), foreach when possible."""
    sources = [s.detach() for s in sources]
    if not sources:  # nothing trainable (a fully frozen model): foreach ops refuse empty lists
        return []
    if targets is None or len(targets) != len(sources) or any(t.shape != s.shape for t, s in zip(targets, sources)):
        return [s.clone() for s in sources]
    if hasattr(torch, "_foreach_copy_"):
        torch._foreach_copy_(targets, sources)
    else:
        for t, s in zip(targets, sources):
            t.copy_(s)
    return targets


class ParamProbe:
    """Gradient/weight statistics of ``module``'s trainable parameters on sampled steps.

    Args:
        module: the model.
        needs: all needs; the gradient, weight, update and init ones are used.
    """

    def __init__(self, module: nn.Module, needs: Iterable[Need]) -> None:
        needs = set(needs)
        stats = {n.stat for n in needs}
        self.module = module
        self.grad_want = {GRAD_STATS[s] for s in stats if s in GRAD_STATS}
        self.grad_keys = sorted(s for s in stats if s in GRAD_STATS)
        self.global_norm = "grad_global_norm" in stats
        self.grad_nonfinite = "grad_nonfinite" in stats
        self.amp_skipped = "amp_skipped" in stats or self.grad_nonfinite
        self.weight_keys = sorted(s for s in stats if s in WEIGHT_STATS)
        self.update_ratio = "update_ratio" in stats
        self.lr = "lr" in stats
        self.unchanged = sorted((n for n in needs if n.stat == "weight_unchanged"), key=lambda n: n.key)
        self.init = [n for n in needs if n.stat in INIT_STATS]
        self.names = {id(p): name for name, p in module.named_parameters()}
        self.embeddings = {id(m.weight) for m in module.modules() if isinstance(m, (nn.Embedding, nn.EmbeddingBag))}
        self._grad_pieces: list[Piece] = []
        self._l2: list[torch.Tensor] = []
        self._skipped: list[torch.Tensor] = []
        self._seen: set[int] = set()
        self._stepped: set[int] = set()  # parameters of the optimizers that stepped in this sampled batch
        self._with_grad: set[int] = set()  # ... of those, the ones that had a gradient
        #: trainable parameters an optimizer stepped without a gradient in the last sampled batch
        #: (left out of ``update_ratio`` and ``weight_unchanged`` there)
        self.no_gradient: list[str] = []
        self.elements = ElementSample()  # which elements of each tensor the snapshot keeps
        self._snap: list[torch.Tensor] | None = None  # kept weights at the last sampled step, before its update
        self._snap_names: list[str] = []
        self._snap_norms: torch.Tensor | None = None
        self._snap_fresh = False  # taken in this sampled step (update_ratio can be measured against it)
        self._named: list[tuple[str, torch.Tensor]] | None = None  # trainable parameters of this sampled step
        self._unchanged_pieces: list[Piece] = []
        self._lrs: list[float | torch.Tensor] = []  # learning rates of the param groups that stepped

    def held_bytes(self) -> int:
        """Bytes of the tensors kept between samples: the weight snapshot (bounded per tensor, see
        :class:`~tripwire.callbacks.torch.element_sample.ElementSample`), its norms and the indices
        of the elements it keeps."""
        return tensor_bytes([*(self._snap or []), *self.elements.indices(), self._snap_norms])

    @property
    def wanted(self) -> bool:
        """Whether any parameter statistic is needed."""
        return bool(self.grad_keys or self.global_norm or self.grad_nonfinite or self.weight_keys
                    or self.update_ratio or self.unchanged or self.lr)

    def trainable(self) -> list[tuple[str, torch.Tensor]]:
        """``(name, parameter)`` of every parameter that requires a gradient."""
        return [(name, p) for name, p in self.module.named_parameters() if p.requires_grad]

    def before_step(self, optimizer: Any, scaler: Any = None) -> None:
        """Gradient statistics of ``optimizer``'s parameters; the first call of a step also compares
        the weights with the previous sample's and snapshots them."""
        optimizer = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer -> torch optimizer
        if (self.update_ratio or self.unchanged) and not self._snap_fresh:
            self._take_snapshot()
        names = self.names
        dense, sparse_like = [], []
        for group in optimizer.param_groups:
            if self.lr and "lr" in group:
                self._lrs.append(group["lr"])
            for p in group["params"]:
                self._stepped.add(id(p))
                if p.grad is not None:
                    self._with_grad.add(id(p))
                if id(p) in self._seen or p.grad is None or p.grad.is_sparse or id(p) not in names:
                    continue
                self._seen.add(id(p))
                (sparse_like if id(p) in self.embeddings else dense).append((names[id(p)], p.grad.detach()))
        for grads, embedding in ((dense, False), (sparse_like, True)):
            if grads:
                self._add_grads(grads, embedding)
        if self.amp_skipped and scaler is not None:
            self._add_amp_skip(optimizer, scaler)

    def _add_grads(self, named: list[tuple[str, torch.Tensor]], embedding: bool) -> None:
        names, grads = [n for n, _ in named], [g for _, g in named]
        want = set(self.grad_want)
        if self.global_norm or self.grad_nonfinite:
            want.add("norm")
        stats = tensor_stats(grads, want)
        if embedding and "abs_mean" in stats:
            touched = torch.stack([g.count_nonzero() for g in grads]).float().clamp_min(1)
            stats["abs_mean"] = abs_sums(grads) / touched
        if "norm" in stats:
            self._l2.append(stats["norm"])
        if self.grad_keys:
            values = torch.cat([stats[GRAD_STATS[k]] for k in self.grad_keys])
            self._grad_pieces.append(Piece(values, ON_EVERY_RANK, per_subject(self.grad_keys, names)))

    def _add_amp_skip(self, optimizer: Any, scaler: Any) -> None:
        try:  # private GradScaler API: found-inf flags of this optimizer after unscale_
            found = list(scaler._found_inf_per_device(optimizer).values())
        except Exception:  # noqa: BLE001 - no scaler state for this optimizer
            return
        if found:
            self._skipped.append(torch.stack([f.float().reshape(()) for f in found]).amax())

    def _take_snapshot(self) -> None:
        """``weight_unchanged`` against the snapshot, then the weights as they are as the new one."""
        named = self._named = self.trainable()
        names, params = [n for n, _ in named], self.elements.views([p.detach() for _, p in named])
        comparable = (self._snap is not None and self._snap_names == names and bool(params)
                      and all(a.shape == b.shape and a.device == b.device for a, b in zip(self._snap, params)))
        if comparable and self.unchanged:
            for i, need in enumerate(self.unchanged):
                rtol, atol = float(need.setting("rtol")), float(need.setting("atol"))
                if i == len(self.unchanged) - 1:  # the last comparison may use the snapshot as scratch
                    flags = unchanged_flags(params, self._snap, self._snap_norms, rtol, atol)
                else:
                    flags = allclose_flags(params, self._snap, rtol, atol)
                self._unchanged_pieces.append(Piece(flags, ON_EVERY_RANK, per_subject([need.key], names)))
        self._keep_snapshot(names, params, reuse=comparable)
        self._snap_fresh = True

    def _keep_snapshot(self, names: list[str], params: list[torch.Tensor], reuse: bool) -> None:
        """Copy ``params`` into the snapshot (into its buffers when ``reuse``) and note their norms."""
        self._snap = copy_into(self._snap if reuse else None, params)
        self._snap_names = names
        self._snap_norms = norms(self._snap) if params else None

    def pieces(self) -> list[Piece]:
        """Everything of this sampled step, after the optimizer step; resets the step state (also
        when it raises, so that a failed sample leaves nothing behind for the next)."""
        try:
            return self._step_pieces()
        finally:
            self._grad_pieces, self._l2, self._skipped, self._seen, self._stepped = [], [], [], set(), set()
            self._with_grad = set()
            self._unchanged_pieces, self._named, self._snap_fresh, self._lrs = [], None, False, []

    def _step_pieces(self) -> list[Piece]:
        named = self._named if self._named is not None else self.trainable()
        self.no_gradient = [n for n, p in named if id(p) in self._stepped and id(p) not in self._with_grad] \
            if self.update_ratio or self.unchanged else []
        out = list(self._grad_pieces) + [_without(piece, self.no_gradient) for piece in self._unchanged_pieces]
        run: dict[str, torch.Tensor] = {}
        if self._l2:
            l2 = torch.cat(self._l2)
            if self.global_norm:
                run["grad_global_norm"] = l2.square().sum().sqrt()
            if self.grad_nonfinite:
                run["grad_nonfinite"] = (~torch.isfinite(l2)).any().float()
        if self._skipped:
            run["amp_skipped"] = torch.stack(self._skipped).amax()
        names, params = [n for n, _ in named], [p.detach() for _, p in named]
        if self._lrs:
            run["lr"] = _largest(self._lrs, params[0].device if params else torch.device("cpu"))
        if params and self.weight_keys:
            stats = tensor_stats(params, {WEIGHT_STATS[k] for k in self.weight_keys})
            per = [k for k in self.weight_keys if k != "weight_nonfinite"]
            if per:
                values = torch.cat([stats[WEIGHT_STATS[k]] for k in per])
                out.append(Piece(values, ON_EVERY_RANK, per_subject(per, names)))
            if "weight_nonfinite" in self.weight_keys:
                run["weight_nonfinite"] = stats["nonfinite"].amax()
        if self.update_ratio and self._snap_fresh and params and self._snap_names == names:
            out.extend(self._update_ratios(named, params))
        if run:
            keys = sorted(run)
            out.append(Piece(torch.stack([run[k] for k in keys]), ON_EVERY_RANK, run_wide(keys)))
        return out

    def _update_ratios(self, named: list[tuple[str, torch.Tensor]], params: list[torch.Tensor]) -> list[Piece]:
        """``update_ratio`` of the parameters whose optimizer stepped them with a gradient in this
        batch (``named``: the parameters themselves, whose ids the optimizers hold; ``params``: the
        same, detached). The others (a GAN's generator on a batch where only the critic steps, a
        head the forward pass skips) did not move, as intended."""
        keep = [i for i, (_, p) in enumerate(named) if id(p) in self._with_grad]
        if not keep:
            return []
        snap = [self._snap[i] for i in keep]  # type: ignore[index]
        scale = self._snap_norms[keep]  # type: ignore[index]
        ratios = step_ratios(self.elements.views([params[i] for i in keep]), snap, scale,
                             restore=bool(self.unchanged))
        return [Piece(ratios, ON_EVERY_RANK, per_subject(["update_ratio"], [named[i][0] for i in keep]))]

    def remember_weights(self) -> None:
        """Take the weights as they are now as the previous sample's (a resumed run has lost them)."""
        if self.unchanged:
            named = self.trainable()
            self._keep_snapshot([n for n, _ in named], self.elements.views([p.detach() for _, p in named]),
                                reuse=False)
            self._snap_fresh = False

    def init_pieces(self) -> list[Piece]:
        """Initial-weight statistics of Linear/Conv weights (call once, before training)."""
        if not self.init:
            return []
        named = [(f"{mname}.weight" if mname else "weight", m.weight) for mname, m in self.module.named_modules()
                 if isinstance(m, INIT_MODULES) and m.weight.requires_grad and m.weight.numel()]
        if not named:
            return []
        names, weights = [n for n, _ in named], [w.detach() for _, w in named]
        out = []
        for need in sorted(self.init, key=lambda n: n.key):
            if need.stat == "init_weight_gain":
                values = init_gains(weights)
            else:
                values = identical_rows(weights, float(need.setting("rtol")), float(need.setting("atol")))
            out.append(Piece(values, ON_EVERY_RANK, per_subject([need.key], names)))
        return out
