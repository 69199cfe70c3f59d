"""Fused statistics over many tensors, on their device, without host synchronisation.

Pure functions: tensors in, small float32 device tensors out. The collector calls them on
sampled steps only. Per-tensor norms use ``torch._foreach_norm`` grouped by (device, dtype)
with float32 accumulation (a handful of kernel launches for hundreds of tensors); on
accelerators, statistics that have no foreach op (signed sums, zero counts, variances) use one
``cat`` and ``segment_reduce``, while on CPU, where there is no launch cost to save and those
ops are slow, they are plain per-tensor reductions. The private ops are feature-detected;
without them each falls back to a per-tensor loop that computes the same numbers.

Nothing on the accelerator path calls ``.item()``, ``.cpu()``, ``bool(tensor)`` or reads a value
on the host. Only on CPU, where a read waits for nothing, :func:`allclose_flags` reads a few
norms to skip its exact test for tensors that clearly moved.

Example:
    >>> import torch
    >>> ts = [torch.tensor([3.0, 4.0]), torch.tensor([0.0, 1.0, 0.0, -1.0])]
    >>> tensor_stats(ts, {"norm", "abs_mean", "zero_frac", "var"})["zero_frac"].tolist()
    [0.0, 0.5]
    >>> norms(ts).tolist()
    [5.0, 1.4142135381698608]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence

import torch

Tensor = torch.Tensor

#: Statistics :func:`tensor_stats` can compute, one value per tensor.
TENSOR_STATS = ("norm", "abs_mean", "zero_frac", "var", "nonfinite")

_FOREACH_DEVICES = {"cpu", "cuda", "xpu", "mtia", "privateuseone"}
_foreach_norm_ok = hasattr(torch, "_foreach_norm")  # turned off at the first failure
_segment_reduce_ok = hasattr(torch, "segment_reduce")
_lengths_cache: dict[tuple, tuple[Tensor, Tensor]] = {}
_LENGTHS_CACHE_MAX = 64


def device_tensor(values: Sequence[float | int], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A small constant tensor on ``device``, copied without blocking the host (pinned source on CUDA)."""
    host = torch.tensor(list(values), dtype=dtype)
    if torch.device(device).type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def tensor_bytes(tensors: Sequence[Tensor | None]) -> int:
    """Bytes of ``tensors``' elements (None entries count nothing): what a probe keeps."""
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def group_by_device_dtype(tensors: Sequence[Tensor]) -> dict[tuple[torch.device, torch.dtype], list[int]]:
    """Indices of ``tensors`` grouped by (device, dtype), as foreach kernels need them."""
    groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault((t.device, t.dtype), []).append(i)
    return groups


def _foreach_ok(device: torch.device, group: Sequence[Tensor]) -> bool:
    # Tensor subclasses (DTensor, ...) take the per-tensor path, as clip_grad_norm_ does.
    return _foreach_norm_ok and device.type in _FOREACH_DEVICES and all(type(t) is Tensor for t in group)


def norms(tensors: Sequence[Tensor], ord: float = 2.0) -> Tensor:
    """Vector norm of every tensor, float32, shape ``[len(tensors)]``, on the first tensor's device.

    ``ord=2`` also flags non-finite tensors (the norm of a tensor holding NaN/Inf is NaN/Inf),
    ``ord=1`` is the sum of absolute values, ``ord=inf`` the largest absolute value.
    """
    global _foreach_norm_ok
    out: list[Tensor | None] = [None] * len(tensors)
    first = tensors[0].device
    for (device, _), idx in group_by_device_dtype(tensors).items():
        group = [tensors[i] for i in idx]
        values = None
        if _foreach_ok(device, group):
            try:
                values = torch._foreach_norm(group, ord, dtype=torch.float32)
            except (TypeError, RuntimeError, NotImplementedError):  # older torch: no dtype argument
                _foreach_norm_ok = False
        if values is None:
            values = [torch.linalg.vector_norm(t, ord, dtype=torch.float32) for t in group]
        for i, v in zip(idx, values):
            out[i] = v if device == first else v.to(first, non_blocking=True)
    return torch.stack(out)  # type: ignore[arg-type]


def _lengths(numels: tuple[int, ...], device: torch.device) -> tuple[Tensor, Tensor]:
    """Cached (int64 lengths, float32 lengths) of a layout on ``device``; built once per layout."""
    key = (str(device), numels)
    hit = _lengths_cache.get(key)
    if hit is None:
        if len(_lengths_cache) >= _LENGTHS_CACHE_MAX:
            _lengths_cache.clear()
        lengths = device_tensor(numels, torch.int64, device)
        hit = _lengths_cache[key] = (lengths, lengths.float())
    return hit


def numels(tensors: Sequence[Tensor]) -> Tensor:
    """Element counts as a float32 device tensor (cached per layout: no host-to-device copy per call)."""
    return _lengths(tuple(t.numel() for t in tensors), tensors[0].device)[1]


def segment_sums(flat: Tensor, lengths: Tensor, sizes: Sequence[int]) -> Tensor:
    """Sum of each consecutive segment of ``flat``; ``lengths`` is ``sizes`` as a device tensor."""
    global _segment_reduce_ok
    if _segment_reduce_ok:
        try:
            # unsafe=True skips the validity checks, which read `lengths` on the host.
            return torch.segment_reduce(flat, "sum", lengths=lengths, unsafe=True)
        except (TypeError, RuntimeError, NotImplementedError):
            _segment_reduce_ok = False
    return torch.stack([part.sum() for part in torch.split(flat, list(sizes))])


class Flat:
    """Tensors concatenated into one float32 vector, for per-tensor reductions in one pass.

    Example:
        >>> f = Flat([torch.ones(2), torch.arange(3.0)])
        >>> f.sums().tolist(), f.count(f.flat == 0).tolist()
        ([2.0, 3.0], [0.0, 1.0])
    """

    def __init__(self, tensors: Sequence[Tensor]) -> None:
        device = tensors[0].device
        self.sizes = tuple(t.numel() for t in tensors)
        self.lengths, self.n = _lengths(self.sizes, device)
        self.flat = torch.cat([t.detach().reshape(-1).to(device, non_blocking=True) for t in tensors]).float()

    def sums(self, values: Tensor | None = None) -> Tensor:
        """Per-tensor sums of ``values`` (default: the elements themselves)."""
        return segment_sums(self.flat if values is None else values, self.lengths, self.sizes)

    def count(self, mask: Tensor) -> Tensor:
        """Per-tensor number of True elements of a boolean mask over :attr:`flat`."""
        return self.sums(mask.float())

    def variances(self) -> Tensor:
        """Population variance of every tensor, two-pass (exact for constant tensors)."""
        means = self.sums() / self.n
        spread = torch.repeat_interleave(means, self.lengths, output_size=self.flat.numel())
        return self.sums((self.flat - spread).square()) / self.n


def tensor_stats(tensors: Sequence[Tensor], want: set[str] | frozenset[str]) -> dict[str, Tensor]:
    """Per-tensor statistics named in ``want`` (a subset of :data:`TENSOR_STATS`), each ``[n]`` float32.

    ``norm``: L2 norm; ``abs_mean``: mean |x|; ``zero_frac``: share of exact zeros; ``var``:
    population variance; ``nonfinite``: 1.0 when the tensor holds a NaN/Inf (read from the L2 norm).
    """
    unknown = set(want) - set(TENSOR_STATS)
    if unknown:
        raise ValueError(f"unknown tensor statistics {sorted(unknown)}; valid: {', '.join(TENSOR_STATS)}")
    out: dict[str, Tensor] = {}
    if not tensors or not want:
        return out
    if "norm" in want or "nonfinite" in want:
        l2 = norms(tensors, 2.0)
        if "norm" in want:
            out["norm"] = l2
        if "nonfinite" in want:
            out["nonfinite"] = (~torch.isfinite(l2)).float()
    if {"abs_mean", "zero_frac"} & set(want) and not _fused(tensors) and _grouped_ok(tensors):
        try:
            out.update(_grouped_stats(tensors, want))
        except (RuntimeError, NotImplementedError, TypeError):
            _disable_grouped()
    if "abs_mean" in want and "abs_mean" not in out:
        out["abs_mean"] = abs_sums(tensors) / numels(tensors)
    if not ({"zero_frac", "var"} - set(out)) & set(want):
        return out
    if _fused(tensors):
        flat = Flat(tensors)
        if "zero_frac" in want:
            out["zero_frac"] = flat.count(flat.flat == 0) / flat.n
        if "var" in want:
            out["var"] = flat.variances()
        return out
    n = numels(tensors)
    if "zero_frac" in want and "zero_frac" not in out:
        out["zero_frac"] = 1.0 - torch.stack([t.count_nonzero() for t in tensors]).float() / n
    if "var" in want:
        out["var"] = torch.stack([_variance(t) for t in tensors])
    return out


#: Take the accelerator code path on CPU too (no host reads between flushes): lets a CPU run
#: rehearse what a CUDA run executes, as ``benchmarks/gpu_check.py`` does.
accelerator_path_on_cpu = False


def host_readable(t: Tensor) -> bool:
    """Whether reading ``t`` on the host waits for nothing (a CPU tensor, unless rehearsing)."""
    return t.device.type == "cpu" and not accelerator_path_on_cpu


def _fused(tensors: Sequence[Tensor]) -> bool:
    """Whether to reduce through one ``cat`` + ``segment_reduce`` (accelerators: few kernel
    launches) rather than tensor by tensor (CPU, where ``segment_reduce``, bool-to-float casts and
    ``repeat_interleave`` are single-threaded loops several times slower than plain reductions,
    and where reading a value on the host costs no device sync)."""
    return not host_readable(tensors[0])


#: On CPU, take ``abs_mean`` and ``zero_frac`` of float32 tensors through foreach ops
#: (``benchmarks/fused_stats.py``); off: per-tensor reductions.
cpu_grouped_stats = hasattr(torch, "_foreach_abs") and hasattr(torch, "_foreach_sign_")
#: Elements per group of :func:`_grouped_stats`: its temporaries are at most about this large.
GROUPED_STATS_ELEMENTS = 1 << 22


def _disable_grouped() -> None:
    global cpu_grouped_stats
    cpu_grouped_stats = False


def _grouped_ok(tensors: Sequence[Tensor]) -> bool:
    return cpu_grouped_stats and all(type(t) is Tensor and t.dtype == torch.float32 for t in tensors)


def _grouped_stats(tensors: Sequence[Tensor], want: set[str] | frozenset[str]) -> dict[str, Tensor]:
    """``abs_mean`` and ``zero_frac`` of float32 CPU tensors: ``|x|`` of a group of tensors in one
    foreach op, summed, then (``zero_frac``) turned into non-zero indicators in place by its sign."""
    tensors = [t.detach() for t in tensors]
    n = numels(tensors)
    abs_sums_, nonzero = [], []
    for group in _groups(tensors, GROUPED_STATS_ELEMENTS):
        magnitudes = torch._foreach_abs([tensors[i] for i in group])
        abs_sums_ += [m.sum() for m in magnitudes]
        if "zero_frac" in want:
            torch._foreach_sign_(magnitudes)  # 1 where x != 0, else 0 (NaN included)
            nonzero += [m.sum() for m in magnitudes]
    out = {"abs_mean": torch.stack(abs_sums_) / n} if "abs_mean" in want else {}
    if nonzero:
        counts = torch.stack(nonzero)
        # sign(NaN) is 0, but a NaN is not a zero: a tensor holding one (|x| sums to NaN) is counted exactly
        for i in (~torch.isfinite(torch.stack(abs_sums_))).nonzero().flatten().tolist():
            counts[i] = tensors[i].count_nonzero()
        out["zero_frac"] = 1.0 - counts / n
    return out


def _variance(t: Tensor) -> Tensor:
    """Two-pass population variance of one tensor in float32 (exact for a constant tensor)."""
    x = t.detach().float()
    return torch.linalg.vector_norm(x - x.mean()).square() / max(x.numel(), 1)


def abs_sums(tensors: Sequence[Tensor]) -> Tensor:
    """Sum of |x| of every tensor, float32, shape ``[len(tensors)]``.

    On CPU ``abs`` (into a reused buffer) + ``sum`` is ~4x faster than the (unvectorized)
    L1-norm kernel.
    """
    if _fused(tensors):
        return norms(tensors, 1.0)
    return torch.stack([torch.abs(t.detach(), out=scratch_like(t)).sum(dtype=torch.float32) for t in tensors])


def _foreach(name: str, fallback, *args):  # noqa: ANN001, ANN202 - thin dispatch helper
    """``torch._foreach_<name>(*args)`` when that private op exists and accepts the inputs, else ``fallback``."""
    fn = getattr(torch, f"_foreach_{name}", None)
    if fn is not None:
        try:
            return list(fn(*args))
        except (RuntimeError, NotImplementedError, TypeError):
            pass
    return list(fallback(*args))


def sub(a: Sequence[Tensor], b: Sequence[Tensor]) -> list[Tensor]:
    """Elementwise ``a[i] - b[i]`` for every pair."""
    return _foreach("sub", lambda x, y: [p - q for p, q in zip(x, y)], list(a), list(b))


def update_ratios(after: Sequence[Tensor], before: Sequence[Tensor]) -> Tensor:
    """``||after - before|| / ||before||`` per tensor (a zero ``before`` divides by a tiny value).
    :func:`step_ratios` does the same in place in a snapshot."""
    return norms(sub(after, before)) / norms(before).clamp_min(1e-30)


def step_ratios(after: Sequence[Tensor], snapshot: Sequence[Tensor], scale: Tensor, *, restore: bool) -> Tensor:
    """``||after - snapshot|| / scale`` per tensor (``scale``: the snapshot's norms), computed in
    place in ``snapshot``: no model-sized temporary. With ``restore`` the snapshot holds its
    values again afterwards (``(s - a) + a``: exact where nothing moved, within an ulp elsewhere).

    Example:
        >>> snap = [torch.ones(4)]
        >>> step_ratios([torch.full((4,), 1.5)], snap, torch.tensor([2.0]), restore=True).tolist(), snap[0].tolist()
        ([0.5], [1.0, 1.0, 1.0, 1.0])
    """
    snapshot, after = list(snapshot), list(after)
    _sub_(snapshot, after)
    moved = norms(snapshot)
    if restore:
        _add_(snapshot, after)
    return moved / scale.clamp_min(1e-30)


def unchanged_flags(current: Sequence[Tensor], snapshot: Sequence[Tensor], snapshot_norms: Tensor, rtol: float,
                    atol: float) -> Tensor:
    """:func:`allclose_flags` of ``current`` against ``snapshot``, which it may overwrite (the caller
    copies ``current`` into it next). ``snapshot_norms`` are the snapshot's L2 norms, known from
    when it was taken. The difference is taken in place in the snapshot: no model-sized temporary
    (on CPU its fresh pages cost more than the arithmetic). On CPU the norm bound settles every
    tensor that moved and the exact test runs on the rest, with their snapshot restored first; on
    accelerators the elementwise test runs on the device in groups of at most
    :data:`ALLCLOSE_GROUP_ELEMENTS`, so its one temporary is a group's size, not the model's."""
    current, snapshot = list(current), list(snapshot)
    _sub_(snapshot, current)  # b - a
    if not _fused(current):
        return _settle_by_norms(current, norms(snapshot), snapshot_norms, rtol, atol,
                                lambda i: snapshot[i].add_(current[i]))

    def operands(group: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        diff = [snapshot[i] for i in group]
        reference = _foreach("add", lambda x, y: [p + q for p, q in zip(x, y)], [current[i] for i in group], diff)
        _inplace("abs_", lambda x: [t.abs_() for t in x], reference)  # |b|, b recomputed as a + (b - a)
        return diff, reference

    return _close_by_group(current, operands, rtol, atol)


def allclose_flags(current: Sequence[Tensor], previous: Sequence[Tensor], rtol: float, atol: float) -> Tensor:
    """1.0 per pair where ``torch.allclose(current, previous, rtol, atol)`` holds, else 0.0 (NaN: 0.0).

    allclose means ``|a - b| <= atol + rtol * |b|`` everywhere, i.e. the largest excess
    ``max(|a - b| - atol - rtol * |b|)`` is at most zero.
    """
    current, previous = list(current), list(previous)
    if not _fused(current):
        # reading a value costs no device sync on CPU: three passes settle the tensors that moved
        return _settle_by_norms(current, norms(sub(current, previous)), norms(previous), rtol, atol,
                                lambda i: previous[i])

    def operands(group: list[int]) -> tuple[list[Tensor], list[Tensor]]:
        b = [previous[i] for i in group]
        return sub([current[i] for i in group], b), _foreach("abs", lambda x: [t.abs() for t in x], b)

    return _close_by_group(current, operands, rtol, atol)


#: Elements per group of the elementwise ``allclose`` test on accelerators (its temporaries are
#: this large, not model-sized).
ALLCLOSE_GROUP_ELEMENTS = 1 << 26


def _groups(tensors: Sequence[Tensor], limit: int) -> list[list[int]]:
    """Consecutive index groups of at most ``limit`` elements (a larger tensor is a group alone)."""
    groups: list[list[int]] = []
    size = 0
    for i, t in enumerate(tensors):
        if not groups or size + t.numel() > limit:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += t.numel()
    return groups


def _close_by_group(current: list[Tensor], operands: Callable[[list[int]], tuple[list[Tensor], list[Tensor]]],
                    rtol: float, atol: float) -> Tensor:
    """allclose flags on the device, no host read: ``operands(group)`` gives that group's scratch
    ``(±(a - b), |b|)``, overwritten here with the excess ``|a - b| - atol - rtol * |b|``. Each
    step is one foreach op in place: ~30x faster than a fresh tensor per operation."""
    largest: list[Tensor] = []
    for group in _groups(current, ALLCLOSE_GROUP_ELEMENTS):
        diff, tol = operands(group)
        _inplace("mul_", lambda x, r: [t.mul_(r) for t in x], tol, rtol)
        _inplace("add_", lambda x, r: [t.add_(r) for t in x], tol, atol)
        _inplace("abs_", lambda x: [t.abs_() for t in x], diff)
        _sub_(diff, tol)
        # the foreach max is one fused op; the inf-norm is ~100x slower on CPU
        largest += _foreach("max", lambda x: [t.amax() for t in x], diff)
    return (torch.stack(largest).float() <= 0).float()  # a NaN excess makes the max NaN: not close


def _settle_by_norms(current: list[Tensor], moved: Tensor, reference_norms: Tensor, rtol: float, atol: float,
                     reference: Callable[[int], Tensor]) -> Tensor:
    """allclose flags on CPU from ``moved = ||a - b||``: allclose implies ``||a - b|| <= atol *
    sqrt(n) + rtol * ||b||``, so a pair beyond that bound is not close; the exact elementwise test
    runs only for the rest, against ``reference(i)`` (the tensor b)."""
    maybe = (moved <= reference_norms * rtol + atol * numels(current).sqrt()).tolist()
    flags = [float(torch.allclose(a, reference(i), rtol=rtol, atol=atol)) if m else 0.0
             for i, (a, m) in enumerate(zip(current, maybe))]
    return torch.tensor(flags, dtype=torch.float32)


def _sub_(targets: list[Tensor], others: list[Tensor]) -> None:
    """``targets[i] -= others[i]`` in place."""
    _inplace("sub_", lambda x, y: [a.sub_(b) for a, b in zip(x, y)], targets, others)


def _add_(targets: list[Tensor], others: list[Tensor]) -> None:
    """``targets[i] += others[i]`` in place."""
    _inplace("add_", lambda x, y: [a.add_(b) for a, b in zip(x, y)], targets, others)


def _inplace(name: str, fallback, *args) -> None:  # noqa: ANN001 - thin dispatch helper
    """``torch._foreach_<name>(*args)`` (an in-place op) when it exists and accepts the inputs, else ``fallback``."""
    fn = getattr(torch, f"_foreach_{name}", None)
    if fn is not None:
        try:
            fn(*args)
            return
        except (RuntimeError, NotImplementedError, TypeError):
            pass
    fallback(*args)


def init_gains(weights: Sequence[Tensor]) -> Tensor:
    """``std(w) * sqrt(fan_in)`` per weight (fan_in = elements per output unit): about 0.58 for
    PyTorch's default Linear/Conv init, 1 for LeCun, sqrt(2) for He, far off for a bad init."""
    out = []
    for w in weights:
        w = w.detach().float()
        out.append(w.std(correction=0) * math.sqrt(max(w[0].numel(), 1)))
    return torch.stack(out)


def identical_rows(weights: Sequence[Tensor], rtol: float, atol: float) -> Tensor:
    """Share of output units (rows of the weight seen as ``[out, fan_in]``) whose incoming
    weights are allclose (``rtol``, ``atol``) to the mean row: 1.0 for a constant or
    row-replicated init, ~0 for a random one. A single output unit (a regression or binary head)
    has nothing to be identical to: 0."""
    out = []
    for w in weights:
        rows = w.detach().float().reshape(w.shape[0], -1)
        if rows.shape[0] < 2:
            out.append(rows.new_zeros(()))
            continue
        mean = rows.mean(0, keepdim=True)
        close = ((rows - mean).abs() <= atol + rtol * mean.abs()).all(1)
        out.append(close.float().mean())
    return torch.stack(out)


def reduce_dims(y: Tensor) -> tuple[int, ...]:
    """Dimensions that index samples: all but the unit dimension, which is the last one for
    ``(N, F)`` / ``(N, T, F)`` and dimension 1 (channels) for ``(N, C, H, W)`` and beyond."""
    if y.dim() <= 1:
        return (0,) if y.dim() == 1 else ()
    if y.dim() <= 3:
        return tuple(range(y.dim() - 1))
    return (0, *range(2, y.dim()))


#: Largest temporary (elements) :func:`scratch_like` serves from its reused buffer.
SCRATCH_MAX_ELEMENTS = 1 << 24
_scratch = threading.local()


def scratch_like(t: Tensor) -> Tensor:
    """A contiguous uninitialized tensor shaped like ``t``, valid until the next call.

    On CPU it is a view of one buffer per thread and dtype, reused from call to call: a fresh
    allocation of a few MB lands on pages the allocator has just handed back to the system, and
    faulting them in costs more than the arithmetic done on them (1.4 ms vs 0.15 ms for a conv
    layer's ReLU output). Elsewhere (and above :data:`SCRATCH_MAX_ELEMENTS`) a new tensor: the
    device caching allocators already reuse memory.

    Example:
        >>> a = scratch_like(torch.ones(2, 3)); b = scratch_like(torch.ones(6))
        >>> a.shape, a.data_ptr() == b.data_ptr()
        (torch.Size([2, 3]), True)
    """
    n = t.numel()
    if t.device.type != "cpu" or n > SCRATCH_MAX_ELEMENTS:
        return torch.empty(t.shape, dtype=t.dtype, device=t.device)
    buffers = _scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(t.dtype)
    if buffer is None or buffer.numel() < n:
        buffer = buffers[t.dtype] = torch.empty(n, dtype=t.dtype)
    return buffer[:n].view(t.shape)


# The shares below avoid boolean tensors: on CPU a comparison into bool, the bool-to-float cast
# and a reduction of bools are each slower than the float `sign` + `clamp_min_` + `mean` used
# here (6x on a conv layer's output). NaN outputs give a NaN share for their unit.
def active_share(y: Tensor, dims: tuple[int, ...]) -> Tensor:
    """Per unit, the share of samples where ``y != 0`` (float32): where a ReLU-family unit
    passes a gradient (hard-swish's small negative outputs do).

    Example:
        >>> active_share(torch.tensor([[1.0, 0.0], [2.0, -0.3], [0.5, 0.0]]), (0,)).tolist()
        [1.0, 0.3333333432674408]
    """
    if not dims:
        return torch.sign(y.detach()).abs_().float()
    return torch.sign(y.detach(), out=scratch_like(y)).abs_().mean(dims, dtype=torch.float32)


def extreme_share(y: Tensor, dims: tuple[int, ...], level: float, center: float = 0.0) -> Tensor:
    """Per unit, the share of samples where ``|y - center| >= level`` (float32).

    Example:
        >>> extreme_share(torch.tensor([[0.995, 0.2], [-0.999, 0.99]]), (0,), 0.99).tolist()
        [1.0, 0.5]
    """
    y = y.detach()
    out = scratch_like(y) if dims else torch.empty_like(y)
    inside = torch.sub(y, center, out=out).abs_() if center else torch.abs(y, out=out)
    inside.neg_().add_(level).sign_().clamp_min_(0)  # 1 where |y - center| < level
    return 1.0 - (inside.mean(dims, dtype=torch.float32) if dims else inside.float())


def class_counts(labels: Tensor, capacity: int) -> Tensor:
    """Counts of integer labels ``0..capacity-1`` plus, at the end, the largest label seen.

    Labels >= ``capacity`` are not counted (the caller grows the capacity from the largest
    label and drops that window); negative labels (ignore_index) are skipped. ``bincount``
    is not used because on CUDA it reads the largest label on the host (CPU labels are counted on
    the host instead: :class:`~tripwire.callbacks.torch.label_tally.LabelTally`).
    """
    y = labels.detach().reshape(-1)
    inside = (y >= 0) & (y < capacity)
    counts = torch.zeros(capacity + 1, dtype=torch.float32, device=y.device)
    counts.index_add_(0, torch.where(inside, y, capacity).long(), inside.float())
    counts[capacity] = y.max().float() if y.numel() else -1.0
    return counts


def add_class_counts(total: Tensor, counts: Tensor) -> None:
    """Add :func:`class_counts` ``counts`` into ``total`` in place (the largest label: the larger one)."""
    total[:-1] += counts[:-1]
    torch.maximum(total[-1:], counts[-1:], out=total[-1:])


def feature_stats(x: Tensor) -> Tensor:
    """Per input feature (last dim, or dim 1 for images ``(N, C, H, W)``): a ``[5, F]`` float32
    tensor of count, sum, sum of squares, min and max over all other positions."""
    x = x.detach()
    if x.dim() == 0:
        x = x.reshape(1, 1)
    elif x.dim() == 1:
        x = x.reshape(-1, 1)
    dims = reduce_dims(x)
    xf = x.float()
    count = xf.new_full((feature_axis_size(x),), float(x.numel() // max(feature_axis_size(x), 1)))
    return torch.stack([count, xf.sum(dims), xf.square().sum(dims), xf.amin(dims), xf.amax(dims)])


def feature_axis_size(x: Tensor) -> int:
    """Number of features :func:`feature_stats` reports for ``x``."""
    if x.dim() <= 1:
        return 1
    return x.shape[-1] if x.dim() <= 3 else x.shape[1]
