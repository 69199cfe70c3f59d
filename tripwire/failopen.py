"""Fail open: a failure inside tripwire's own instrumentation never breaks the user's training.

Every place where an adapter reaches into the framework (probing a layer, swapping the
optimizer, registering hooks, building the statistics step, reading a booster) runs under a
:class:`FailOpen` guard named after that part. When it raises, the part is switched off for the
rest of the run, one warning names it and the reason, and training goes on exactly as it would
without tripwire: rules that needed the lost statistics simply receive no values. With
``strict=True`` the original exception propagates instead, so a developer sees it at once.

Parts are named ``"<what> <where>"``, e.g. ``"activation probe on layer 'lstm'"``; a part that
has failed is never tried again (:meth:`FailOpen.ok` says whether it still runs).

Example:
    >>> guard = FailOpen(strict=False)
    >>> guard.call("gradient statistics", lambda: 1 / 0, fallback=None) is None
    True
    >>> guard.ok("gradient statistics"), list(guard.disabled)
    (False, ['gradient statistics'])
    >>> with guard.attempt("weight snapshot"):
    ...     raise RuntimeError("out of memory")
    >>> guard.disabled["weight snapshot"]
    'RuntimeError: out of memory'
    >>> FailOpen(strict=True).call("reading the booster", lambda: 1 / 0)
    Traceback (most recent call last):
    ...
    ZeroDivisionError: division by zero
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

log = logging.getLogger("tripwire")

T = TypeVar("T")


class FailOpen:
    """Runs instrumentation code; a part that raises is disabled with one warning.

    Args:
        strict: re-raise instead (the ``strict`` setting of the config or the constructor).

    Attributes:
        disabled: ``{part: "ExceptionType: message"}`` of every part switched off, in order.
    """

    def __init__(self, strict: bool = False) -> None:
        self.strict = bool(strict)
        self.disabled: dict[str, str] = {}

    def ok(self, part: str) -> bool:
        """Whether ``part`` has not failed (so it should still run)."""
        return part not in self.disabled

    def call(self, part: str, fn: Callable[..., T], *args: Any, fallback: Any = None, **kwargs: Any) -> T | Any:
        """``fn(*args, **kwargs)``, or ``fallback`` when it raises or ``part`` failed before."""
        if part in self.disabled:
            return fallback
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the point of the guard
            self.fail(part, exc)
            return fallback

    @contextlib.contextmanager
    def attempt(self, part: str) -> Iterator[None]:
        """The block's exception disables ``part`` and is swallowed (re-raised when strict)."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - the point of the guard
            self.fail(part, exc)

    def fail(self, part: str, exc: BaseException) -> None:
        """Disable ``part`` because of ``exc`` (re-raised when strict); warns once per part."""
        if self.strict:
            raise exc
        if part in self.disabled:
            return
        self.disabled[part] = f"{type(exc).__name__}: {exc}"
        log.warning("tripwire: %s failed and is off for the rest of this run (%s); training goes on "
                    "unchanged, the rules that need it get no values. Please report this with the "
                    "traceback below (strict=True raises it instead).", part, self.disabled[part],
                    exc_info=exc)


def try_each(items: Iterable[T], fn: Callable[[T], Any]) -> Exception | None:
    """``fn(item)`` for every item, even after one raised; the first exception, or None.

    For teardown (removing hooks): one that cannot be undone must not keep the others in place.

    Example:
        >>> removed = []
        >>> try_each([1, 0, 2], lambda x: removed.append(1 / x))
        ZeroDivisionError('division by zero')
        >>> removed
        [1.0, 0.5]
    """
    first = None
    for item in items:
        try:
            fn(item)
        except Exception as exc:  # noqa: BLE001 - returned once every item was tried
            first = first or exc
    return first
