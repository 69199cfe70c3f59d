"""The registry of rule types: YAML ``type:`` names to rule classes.

Built-in rules register themselves when :mod:`tripwire.rules` is imported. A user's rule is
referenced from YAML as ``type: package.module:ClassName`` and resolved here.

Example:
    >>> cls = rule_class("dead_relu")
    >>> cls.kind
    'dead_relu'
"""

from __future__ import annotations

import difflib
import importlib

from tripwire.references import resolve
from tripwire.rule import Rule

RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    """Class decorator adding a rule type under its ``kind``."""
    if not cls.kind:
        raise TypeError(f"{cls.__name__} has no `kind`")
    if cls.kind in RULES and RULES[cls.kind] is not cls:
        raise TypeError(f"rule kind {cls.kind!r} is already registered by {RULES[cls.kind].__name__}")
    RULES[cls.kind] = cls
    return cls


def builtin_rules() -> dict[str, type[Rule]]:
    """All built-in rule types, sorted by name."""
    importlib.import_module("tripwire.rules")
    return dict(sorted(RULES.items()))


def suggest(name: str, choices) -> str:  # noqa: ANN001 - any iterable of str
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def rule_class(kind: str) -> type[Rule]:
    """Class for a built-in kind or a ``module:Class`` reference.

    Raises:
        KeyError: unknown kind; the message lists the choices and a close match.
        ValueError/ImportError/AttributeError: a ``module:Class`` that does not resolve (see
            :func:`tripwire.references.resolve`).
        TypeError: a ``module:Class`` that is not a subclass of :class:`tripwire.Rule`.
    """
    builtin_rules()
    if kind in RULES:
        return RULES[kind]
    if ":" in kind:
        cls = resolve(kind)
        if not (isinstance(cls, type) and issubclass(cls, Rule)):
            raise TypeError(f"{kind!r} is not a subclass of tripwire.Rule (got a {type(cls).__name__})")
        return cls
    raise KeyError(f"unknown rule type '{kind}'{suggest(kind, RULES)}; "
                   f"valid: {', '.join(sorted(RULES))}, or 'package.module:ClassName' for your own rule")
