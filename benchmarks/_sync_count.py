"""Counting host synchronisations and host reads, attributed to the code that caused them.

Two counts, collected together by :class:`SyncCounter`:

- ``cuda``: real CUDA host syncs. ``torch.cuda.set_sync_debug_mode("warn")`` makes torch warn
  at every synchronizing call; each such warning is counted (CUDA only).
- ``host``: a device-independent stand-in that also runs on CPU. A ``TorchFunctionMode``
  counts the tensor calls that read values on the host (``item``, ``tolist``, ``bool()``,
  ``float()``, ``numpy``, ``torch.tensor([t, ...])``, device-to-host copies) or whose output
  shape depends on the data (``nonzero``, boolean indexing, ``unique``, ``bincount``,
  ``repeat_interleave`` without ``output_size``, ``segment_reduce`` without ``unsafe``).
  On CUDA each of these blocks the host; on CPU nothing waits, but the count is the same.

Each event is attributed by the Python stack at the moment it happens: ``read`` when it is
inside tripwire's ``Packed.read`` (the one host read a flush is allowed), ``tripwire`` when it
is anywhere else in the tripwire package (a host sync between flushes: a defect), ``other``
for framework or user code.

Example:
    >>> import torch
    >>> with SyncCounter() as c:
    ...     t = torch.arange(4.0)
    ...     _ = t.sum().item(), t[t > 1], t * 2
    >>> c.host["other"], c.host["tripwire"], c.violations()
    (2, 0, 0)
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from types import FrameType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

import tripwire

TRIPWIRE_DIR = os.path.dirname(os.path.abspath(tripwire.__file__)) + os.sep
ALLOWED = {("callbacks/torch/packing.py", "read")}  # (path in the package, function) where a flush reads its vector
SYNC_WARNING = r".*synchronizing CUDA operation"

_READS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "__complex__", "numpy",
          "__array__", "__format__", "allclose", "equal", "is_nonzero"}
_SHAPE_FROM_DATA = {"nonzero", "argwhere", "masked_select", "unique", "unique_consecutive", "bincount"}


def _on_device(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.device.type != "cpu"


def _to_host(args: tuple, kwargs: dict) -> bool:
    """Whether a ``to``/``cpu``/``copy_`` call copies a device tensor to the host and waits."""
    if not args or not _on_device(args[0]) or kwargs.get("non_blocking"):
        return False
    target = kwargs.get("device", args[1] if len(args) > 1 else None)
    if isinstance(target, torch.Tensor):
        target = target.device
    return target is not None and not isinstance(target, torch.dtype) and torch.device(target).type == "cpu"


def is_host_read(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether the torch call ``name(*args, **kwargs)`` reads tensor values on the host."""
    if name in _READS or name in _SHAPE_FROM_DATA:
        return True
    if name in ("tensor", "as_tensor"):  # torch.tensor([t1, t2]) reads every element
        data = args[0] if args else kwargs.get("data")
        return isinstance(data, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in data)
    if name in ("__getitem__", "__setitem__"):
        index = args[1] if len(args) > 1 else None
        parts = index if isinstance(index, tuple) else (index,)
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in parts)
    if name == "repeat_interleave":
        return isinstance(args[1] if len(args) > 1 else kwargs.get("repeats"), torch.Tensor) \
            and kwargs.get("output_size") is None
    if name == "segment_reduce":
        return not kwargs.get("unsafe", False)
    if name == "cpu":
        return bool(args) and _on_device(args[0])
    if name == "to":
        return _to_host(args, kwargs)
    if name == "copy_":
        return len(args) > 1 and _on_device(args[1]) and not _on_device(args[0]) \
            and not kwargs.get("non_blocking", args[2] if len(args) > 2 else False)
    return False


def where(frame: FrameType | None) -> tuple[str, str]:
    """``(kind, location)`` of the code running in ``frame`` and its callers (see module docstring)."""
    innermost = None
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(TRIPWIRE_DIR):
            name = path[len(TRIPWIRE_DIR):].replace(os.sep, "/")
            if (name, frame.f_code.co_name) in ALLOWED:
                return "read", f"{name}:{frame.f_code.co_name}"
            innermost = innermost or f"{name}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return ("tripwire", innermost) if innermost else ("other", "")


class _HostReads(TorchFunctionMode):
    def __init__(self, counter: SyncCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if is_host_read(name, args, kwargs):
            self.counter._add("host", name, sys._getframe(1))
        return func(*args, **kwargs)


class SyncCounter:
    """Context manager counting host reads (any device) and, with ``cuda=True``, real CUDA syncs.

    Attributes:
        host, cuda: ``Counter`` of events by kind (``read``, ``tripwire``, ``other``).
        sites: ``Counter`` of ``(count, kind, what, location)`` for events in tripwire code.
    """

    def __init__(self, cuda: bool = False) -> None:
        self.cuda_enabled = cuda
        self.host: Counter[str] = Counter()
        self.cuda: Counter[str] = Counter()
        self.sites: Counter[tuple[str, str, str]] = Counter()
        self._mode: _HostReads | None = None
        self._warnings: Any = None
        self._debug_mode: Any = None

    def _add(self, count: str, what: str, frame: FrameType | None) -> None:
        kind, location = where(frame)
        getattr(self, count)[kind] += 1
        if kind == "tripwire":
            self.sites[(count, what, location)] += 1

    def _on_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        if "synchronizing CUDA operation" in str(message):
            self._add("cuda", "sync", sys._getframe(1))
        else:
            self._showwarning(message, category, filename, lineno, file, line)

    def __enter__(self) -> SyncCounter:
        if self.cuda_enabled:
            self._warnings = warnings.catch_warnings()
            self._warnings.__enter__()
            warnings.filterwarnings("always", message=SYNC_WARNING)
            self._showwarning = warnings.showwarning
            warnings.showwarning = self._on_warning  # called on the warning's own stack
            self._debug_mode = torch.cuda.get_sync_debug_mode()
            torch.cuda.set_sync_debug_mode("warn")
        self._mode = _HostReads(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)  # type: ignore[union-attr]
        self._mode = None
        if self.cuda_enabled:
            torch.cuda.set_sync_debug_mode(self._debug_mode)
            self._warnings.__exit__(*exc)

    def violations(self) -> int:
        """Events in tripwire code outside the flush read (host reads and CUDA syncs together)."""
        return self.host["tripwire"] + self.cuda["tripwire"]

    def describe_sites(self, limit: int = 5) -> str:
        """The most frequent tripwire call sites of violations, one per line."""
        common = self.sites.most_common(limit)
        return "\n".join(f"    {n} x {count} {what} at {loc}" for (count, what, loc), n in common)
