"""Packing statistics into one device vector, reducing it across ranks, reading it back once.

Every probe hands the collector :class:`Piece` objects: a 1-D float32 device tensor, how each
element combines across ranks (``sum``, ``max``, ``min``, or ``same`` for values every rank
already agrees on, such as DDP-averaged gradients), and a function that turns the host values
back into named series. The op of a statistic's elements is its catalogue reduction
(:func:`op`; :data:`tripwire.stats.CATALOGUE`), a ``mean`` travelling as a (total, count) pair
that sums. :func:`pack` concatenates the pieces that need a reduction, reduces
them with **one** ``all_gather`` (then sum/max/min per element on the device), appends the
``same`` pieces, and starts **one** host copy: non-blocking into pinned memory on CUDA, so the
training thread does not wait. :meth:`Packed.read` waits for that copy (an event) and unpacks.

Example:
    >>> import torch
    >>> piece = Piece(torch.tensor([2.0, 3.0]), op("loss"), lambda v: {"loss": {None: v[0] / v[1]}})
    >>> pack([piece]).read()
    {'loss': {None: 0.6666666666666666}}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from tripwire.callbacks.torch.reductions import device_tensor
from tripwire.stats import CATALOGUE

Series = dict[str, dict[str | None, float]]
Reader = Callable[[list[float]], Series]
Gather = Callable[[torch.Tensor], torch.Tensor]  # [K] -> [world, K]
_OPS = {"sum": 0, "max": 1, "min": 2}
#: The packing op of each catalogue reduction; a ``mean`` is packed as a (total, count) pair whose
#: two elements sum across ranks, so the reader divides the totals of every rank's values.
_PACKED = {"sum": "sum", "max": "max", "min": "min", "mean": "sum", "same": "same"}


def op(stat: str) -> str:
    """How the elements of statistic ``stat`` combine across ranks in a :class:`Piece`, from its
    catalogue reduction (both elements of a mean's (total, count) pair: ``sum``).

    Example:
        >>> op("label_count"), op("input_min"), op("loss"), op("tree_depth")
        ('sum', 'min', 'sum', 'same')
    """
    return _PACKED[CATALOGUE[stat].reduce]


def ops(stats: Sequence[str]) -> list[str]:
    """:func:`op` of each element, given the statistic each element belongs to.

    Example:
        >>> ops(["loss", "loss", "loss_nonfinite"])
        ['sum', 'sum', 'sum']
    """
    return [op(stat) for stat in stats]


@dataclass
class Piece:
    """A slice of the packed vector.

    Attributes:
        values: 1-D device tensor (any float dtype; packed as float32).
        reduce: ``sum``/``max``/``min``/``same`` for all elements, or one op per element
            (``same`` only as a whole-piece op).
        read: host values of this piece (already reduced) -> ``{key: {subject: value}}``.
    """

    values: torch.Tensor
    reduce: str | Sequence[str]
    read: Reader

    @property
    def gathered(self) -> bool:
        """Whether this piece crosses ranks (everything but ``same``)."""
        return self.reduce != "same"


class Packed:
    """One flush on its way to the host: the copy is in flight until :meth:`read`."""

    def __init__(self, host: torch.Tensor, readers: list[tuple[int, int, Reader]],
                 event: object | None = None) -> None:
        self._host, self._readers, self._event = host, readers, event

    @property
    def ready(self) -> bool:
        """Whether the host copy has landed (never blocks)."""
        return self._event is None or self._event.query()  # type: ignore[attr-defined]

    def read(self) -> Series:
        """Wait for the copy (a no-op on CPU) and unpack every piece into series."""
        if self._event is not None:
            self._event.synchronize()  # type: ignore[attr-defined]
        values = self._host.tolist()
        out: Series = {}
        for start, end, reader in self._readers:
            for key, series in reader(values[start:end]).items():
                if key in out:
                    out[key].update(series)
                else:  # readers build fresh dicts: kept as they are, not copied (wide inputs: thousands)
                    out[key] = series
        return out


_op_cache: dict[tuple, torch.Tensor] = {}


def _op_codes(pieces: Sequence[Piece], device: torch.device) -> torch.Tensor:
    codes: list[int] = []
    for p in pieces:
        n = p.values.numel()
        codes.extend([_OPS[p.reduce]] * n if isinstance(p.reduce, str) else [_OPS[r] for r in p.reduce])
    key = (str(device), tuple(codes))
    if key not in _op_cache:
        if len(_op_cache) > 32:
            _op_cache.clear()
        _op_cache[key] = device_tensor(codes, torch.int64, device)
    return _op_cache[key]


def reduce_gathered(stacked: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Combine ``[world, K]`` per element by op code (0 sum, 1 max, 2 min), on the device."""
    return torch.where(codes == 0, stacked.sum(0), torch.where(codes == 1, stacked.amax(0), stacked.amin(0)))


def neutral(pieces: Sequence[Piece], device: torch.device) -> torch.Tensor:
    """A vector laid out like ``pieces`` that changes nothing when reduced with the other ranks'
    (0 where they sum, -inf where they take the maximum, +inf where they take the minimum).

    Example:
        >>> neutral([Piece(torch.ones(3), ["sum", "max", "min"], dict)], torch.device("cpu")).tolist()
        [0.0, -inf, inf]
    """
    fill = {"sum": 0.0, "max": float("-inf"), "min": float("inf")}
    values = [fill[op] for p in pieces
              for op in ([p.reduce] * p.values.numel() if isinstance(p.reduce, str) else p.reduce)]
    return torch.tensor(values, dtype=torch.float32, device=device)


def _flat(pieces: Sequence[Piece], device: torch.device) -> torch.Tensor:
    """The pieces' values end to end, as one float32 vector on ``device``."""
    return torch.cat([p.values.detach().reshape(-1).to(device=device, dtype=torch.float32) for p in pieces])


def pack(pieces: Sequence[Piece], gather: Gather | None = None) -> Packed:
    """Concatenate, reduce across ranks when ``gather`` is given, and start the host copy.

    When concatenating fails on this rank, the other ranks are already waiting in the gather:
    this rank still takes part in it with a :func:`neutral` vector of the same size, then raises.
    """
    shared = [p for p in pieces if p.gathered]
    local = [p for p in pieces if not p.gathered]
    ordered = shared + local
    if not ordered:
        return Packed(torch.zeros(0), [])
    device = ordered[0].values.device
    sizes = [p.values.numel() for p in ordered]
    n_shared = sum(sizes[: len(shared)])
    try:
        vector = _flat(ordered, device)
    except Exception:
        if gather is not None and n_shared:
            gather(neutral(shared, device))
        raise
    if gather is not None and n_shared:
        reduced = reduce_gathered(gather(vector[:n_shared].contiguous()), _op_codes(shared, device))
        vector = torch.cat([reduced, vector[n_shared:]])
    readers, start = [], 0
    for p, size in zip(ordered, sizes):
        readers.append((start, start + size, p.read))
        start += size
    if vector.device.type == "cuda":
        host = torch.empty(vector.shape, dtype=vector.dtype, pin_memory=True)
        host.copy_(vector, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return Packed(host, readers, event)
    return Packed(vector.to("cpu", copy=True), readers)


def torch_distributed_gather() -> Gather | None:
    """An all_gather over the default process group, or None when not distributed."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    world = dist.get_world_size()

    def gather(vector: torch.Tensor) -> torch.Tensor:
        out = [torch.empty_like(vector) for _ in range(world)]
        dist.all_gather(out, vector)
        return torch.stack(out)

    return gather
