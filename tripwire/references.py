"""References to the user's own code in the config: ``'package.module:name'``.

A rule type (``type: mypkg.rules:MyRule``) and an action (``actions: [mypkg.hooks:notify]``) name
an object by its module and its name there. :func:`resolve` imports it now, and its error says
what is wrong: the reference is malformed, the module is not found, importing it raised, or the
module has no such name. The config resolves every reference when it loads, so a typo ends the
script before training starts rather than at the first finding.

Example:
    >>> resolve("json:dumps").__name__
    'dumps'
    >>> resolve("json:laods")
    Traceback (most recent call last):
    ...
    AttributeError: module 'json' has no attribute 'laods' (did you mean 'loads'?)
    >>> resolve("no_such_pkg.hooks:notify")
    Traceback (most recent call last):
    ...
    ModuleNotFoundError: module 'no_such_pkg.hooks' not found (No module named 'no_such_pkg')
    >>> resolve("json.dumps")
    Traceback (most recent call last):
    ...
    ValueError: 'json.dumps' is not of the form 'package.module:name'
"""

from __future__ import annotations

import importlib
from typing import Any


def resolve(ref: str) -> Any:
    """The object that ``ref`` (``'package.module:name'``) names, importing its module.

    Raises:
        ValueError: ``ref`` is not of that form.
        ModuleNotFoundError: the module (or a package above it) is not found.
        ImportError: importing the module raised; the message names the module and the error.
        AttributeError: the module has no such name; the message suggests a close one.
    """
    module_name, colon, name = ref.partition(":")
    if not colon or not all(part.isidentifier() for part in module_name.split(".")) or not name.isidentifier():
        raise ValueError(f"{ref!r} is not of the form 'package.module:name'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ModuleNotFoundError(f"module {module_name!r} not found", name=exc.name) from exc
        if exc.name and module_name.startswith(exc.name + "."):
            raise ModuleNotFoundError(f"module {module_name!r} not found ({exc})", name=exc.name) from exc
        raise ImportError(f"importing module {module_name!r} raised ModuleNotFoundError: {exc}") from exc
    except Exception as exc:  # the user's module runs arbitrary code on import
        raise ImportError(f"importing module {module_name!r} raised {type(exc).__name__}: {exc}") from exc
    try:
        return getattr(module, name)
    except AttributeError:
        from tripwire.registry import suggest  # the registry resolves rule types with this module

        public = [n for n in dir(module) if not n.startswith("_")]
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}{suggest(name, public)}") from None
