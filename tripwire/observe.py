"""`tripwire.observe(name, value)`: a statistic of your own, checked like the built-in ones.

Call it from training code (a ``training_step``, a loss function, a module's forward) with a
device scalar or tensor. The value stays on the device: observe adds it to a running sum and
never reads it. At the next flush the active collector drains the registry, and the series
``user/<name>`` holds the mean of the values observed since the previous flush (a tensor with
several elements counts as its mean). Reference it from a rule of your own.

Under DDP each rank reports its own values: the series is the local one (stop decisions are
still agreed across ranks).

Example:
    >>> observe("attn_entropy", 2.0)       # in training code: tripwire.observe(...)
    >>> observe("attn_entropy", 4.0)
    >>> {name: total / count for name, (total, count) in drain().items()}
    {'user/attn_entropy': 3.0}
    >>> drain()
    {}
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

from tripwire.stats import USER_PREFIX

PREFIX = USER_PREFIX
_lock = threading.Lock()
_values: dict[str, list[Any]] = {}  # series name -> [running sum (tensor or float), count]


def observe(name: str, value: Any) -> None:
    """Record ``value`` (a tensor, kept on its device, or a number) under series ``user/<name>``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"observe() needs a non-empty string name, got {name!r}")
    if hasattr(value, "detach"):
        value = value.detach()
        if value.numel() != 1:
            value = value.float().mean()
        value = value.reshape(()).float()
    else:
        value = float(value)
    key = PREFIX + name
    with _lock:
        entry = _values.get(key)
        if entry is None:
            _values[key] = [value, 1]
        else:
            entry[0] = entry[0] + value  # a new tensor: the caller's tensor is never modified
            entry[1] += 1


def drain() -> dict[str, tuple[Any, int]]:
    """Take everything observed since the last drain: ``{series: (sum, count)}``."""
    global _values
    with _lock:
        taken, _values = _values, {}
    return {k: (v[0], v[1]) for k, v in taken.items()}


class _CallableModule(types.ModuleType):
    """``tripwire.observe`` is both this module and the function, whichever Python resolves."""

    def __call__(self, name: str, value: Any) -> None:
        observe(name, value)


sys.modules[__name__].__class__ = _CallableModule
