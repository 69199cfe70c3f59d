"""The keyword arguments every adapter shares with :class:`~tripwire.Monitor`, defined once.

Each adapter's ``__init__`` spells them out as real keyword-only parameters, because
LightningCLI (jsonargparse), IDEs and ``help()`` read the signature. The class decorator
:func:`shared_arguments` holds the class to :data:`SHARED` when it is defined (names, keyword-only,
defaults, annotations: a drift is a ``TypeError`` at import, not a surprise for a user) and writes
their documentation into the class docstring where a ``{shared arguments}`` line stands.

Every override defaults to "the config's value": ``None``, except ``log_dir``, whose ``None``
means "no run record" as in YAML, and which defaults to :data:`~tripwire.config.FROM_CONFIG`.

Example:
    >>> @shared_arguments
    ... class Adapter:
    ...     '''Watches a training run.
    ...
    ...     Args:
    ...         config: the config.
    ...         {shared arguments}
    ...     '''
    ...     def __init__(self, config=None, *, stop_on: Iterable[str] = (), interval: int | None = None,
    ...                  log_dir: str | bool | FromConfig | None = FROM_CONFIG,
    ...                  strict: bool | None = None, run_name: str | None = None) -> None: ...
    >>> print(Adapter.__doc__.splitlines()[4])
            stop_on: rule names that also stop training (each gets the ``stop`` action).
    >>> @shared_arguments
    ... class Drifted:
    ...     def __init__(self, config=None, *, stop_on: Iterable[str] = (), interval: int | None = 5,
    ...                  log_dir: str | bool | FromConfig | None = FROM_CONFIG,
    ...                  strict: bool | None = None, run_name: str | None = None) -> None: ...
    Traceback (most recent call last):
    ...
    TypeError: Drifted.__init__: interval defaults to 5, but the shared default is None (tripwire.arguments.SHARED)
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from typing import Any, TypeVar

from tripwire.config import FROM_CONFIG

__all__ = ["SHARED", "SharedArgument", "shared_arguments"]

T = TypeVar("T", bound=type)

#: the line of a class docstring that :func:`shared_arguments` replaces by the shared arguments' docs
MARKER = "{shared arguments}"


@dataclass(frozen=True)
class SharedArgument:
    """One keyword argument every adapter takes: its name, default, annotation (as written in the
    source, which uses postponed annotations) and documentation."""

    name: str
    default: Any
    annotation: str
    doc: str


SHARED: tuple[SharedArgument, ...] = (
    SharedArgument("stop_on", (), "Iterable[str]",
                   "rule names that also stop training (each gets the ``stop`` action)."),
    SharedArgument("interval", None, "int | None",
                   "steps between sampled steps (optimizer steps; boosting rounds for XGBoost), overriding the "
                   "config's ``interval`` (default 10); None: the config's. Rules see one sample per ``interval`` "
                   "steps, so ``patience`` counts samples; which steps are sampled: :meth:`tripwire.Monitor.due`."),
    # no os.PathLike in this union (a Path works all the same): with it, jsonargparse (LightningCLI)
    # reads YAML's `false` and `null` as the strings "False" and "None"
    SharedArgument("log_dir", FROM_CONFIG, "str | bool | FromConfig | None",
                   "run record directory (overrides the config); ``None`` (or ``False``) writes no record, like "
                   "``log_dir: null`` in YAML; left out (:data:`~tripwire.config.FROM_CONFIG`), the config's "
                   "(default ``tripwire_runs``)."),
    SharedArgument("strict", None, "bool | None",
                   "re-raise a rule's internal error instead of disabling the rule, and a failure of tripwire's own "
                   "instrumentation instead of switching that part off with a warning; None: the config's "
                   "``strict``."),
    SharedArgument("run_name", None, "str | None",
                   "name of the run record directory under ``log_dir``; defaults to a timestamp. A run resumed from "
                   "saved state (a Lightning checkpoint, ``load_state_dict``) continues the record of the run it "
                   "resumes."),
)

def shared_arguments(cls: T) -> T:
    """Check ``cls.__init__`` against :data:`SHARED` and document the shared arguments in
    ``cls.__doc__`` (at its ``{shared arguments}`` line).

    Raises:
        TypeError: ``__init__`` does not take ``config`` first (the plain PyTorch loop's takes the
            model and optimizer it watches before it) and every shared argument
            keyword-only with the shared default and annotation, or the docstring documents
            arguments (``Args:``) without the ``{shared arguments}`` line.
    """
    where = f"{cls.__name__}.__init__"
    parameters = list(inspect.signature(cls.__init__).parameters.values())
    names = [p.name for p in parameters]
    watched = parameters[1:names.index("config")] if "config" in names else []
    if ("config" not in names or parameters[len(watched) + 1].default is not None
            or any(p.default is not p.empty or p.kind is p.KEYWORD_ONLY for p in watched)):
        raise TypeError(f"{where} must take `config=None` as its first argument (after the objects it watches, "
                        "which have no default)")
    given = {p.name: p for p in parameters}
    for arg in SHARED:
        p = given.get(arg.name)
        if p is None or p.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{where} must take the keyword-only argument {arg.name}={arg.default!r} "
                            "(tripwire.arguments.SHARED)")
        if not (p.default is arg.default or (p.default == arg.default and type(p.default) is type(arg.default))):
            raise TypeError(f"{where}: {arg.name} defaults to {p.default!r}, but the shared default is "
                            f"{arg.default!r} (tripwire.arguments.SHARED)")
        if p.annotation != arg.annotation:
            raise TypeError(f"{where}: {arg.name} is annotated {p.annotation!r}, but the shared annotation is "
                            f"{arg.annotation!r} (tripwire.arguments.SHARED)")
    cls.__doc__ = _documented(cls)
    return cls


def _documented(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    if not doc or MARKER not in doc:
        if doc and "\n    Args:\n" in doc:
            raise TypeError(f"{cls.__name__}'s docstring documents its arguments without a '{MARKER}' line "
                            "for the shared ones")
        return doc
    lines = []
    for line in doc.splitlines():
        if line.strip() != MARKER:
            lines.append(line)
            continue
        indent = line[:len(line) - len(line.lstrip())]
        for arg in SHARED:
            lines.extend(_wrapped(f"{arg.name}: {arg.doc}", indent, indent + "    "))
    return "\n".join(lines) + ("\n" if doc.endswith("\n") else "")


def _wrapped(text: str, first: str, rest: str, width: int = 100) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest, break_on_hyphens=False)
