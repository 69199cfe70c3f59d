"""The three callbacks and the Monitor behind them take the arguments they share as one definition
(:data:`tripwire.arguments.SHARED`) says: names, keyword-only, defaults, annotations and docs. The
decorator that holds a class to it raises when the class is defined, so a drift fails at import."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable

import pytest

from tripwire.arguments import SHARED, shared_arguments
from tripwire.config import FROM_CONFIG, FromConfig

ADAPTERS = [("tripwire.callbacks.lightning", "LightningTripwire", "lightning"),
            ("tripwire.callbacks.keras", "KerasTripwire", "keras"),
            ("tripwire.callbacks.xgboost", "XGBoostTripwire", "xgboost"),
            ("tripwire.torch", "Tripwire", "torch"),
            ("tripwire.transformers", "TripwireCallback", "transformers")]


def shared_of(cls) -> dict[str, tuple]:
    parameters = inspect.signature(cls.__init__).parameters
    return {arg.name: (parameters[arg.name].kind, parameters[arg.name].default) for arg in SHARED}


EXPECTED = {"stop_on": (inspect.Parameter.KEYWORD_ONLY, ()), "interval": (inspect.Parameter.KEYWORD_ONLY, None),
            "log_dir": (inspect.Parameter.KEYWORD_ONLY, FROM_CONFIG),
            "strict": (inspect.Parameter.KEYWORD_ONLY, None), "run_name": (inspect.Parameter.KEYWORD_ONLY, None)}


def test_the_monitor_takes_the_shared_arguments_and_documents_them():
    from tripwire import Monitor

    assert shared_of(Monitor) == EXPECTED
    assert all(f"        {arg.name}: {arg.doc[:40]}" in Monitor.__doc__ for arg in SHARED)


@pytest.mark.parametrize("module, name, framework", ADAPTERS)
def test_each_callback_takes_the_shared_arguments_and_documents_them(module, name, framework):
    pytest.importorskip(framework)
    cls = getattr(importlib.import_module(module), name)
    watched = ["model", "optimizer"] if name == "Tripwire" else []  # the plain loop takes what it watches first
    assert list(inspect.signature(cls.__init__).parameters)[:len(watched) + 2] == ["self", *watched, "config"]
    assert shared_of(cls) == EXPECTED
    assert all(f"        {arg.name}: {arg.doc[:40]}" in cls.__doc__ for arg in SHARED)
    assert "{shared arguments}" not in cls.__doc__


def adapter(**changes):
    """A class whose ``__init__`` has the shared arguments, with ``changes`` to their defaults."""
    defaults = {"stop_on": (), "interval": None, "log_dir": FROM_CONFIG, "strict": None, "run_name": None, **changes}

    class Adapter:
        """An adapter.

        Args:
            config: the config.
            {shared arguments}
            extra: its own argument.
        """

        def __init__(self, config=None, *, stop_on: Iterable[str] = defaults["stop_on"],
                     interval: int | None = defaults["interval"],
                     log_dir: str | bool | FromConfig | None = defaults["log_dir"],
                     strict: bool | None = defaults["strict"], run_name: str | None = defaults["run_name"],
                     extra: int = 0) -> None:
            pass

    return Adapter


def test_the_decorator_documents_the_shared_arguments_where_the_marker_stands():
    lines = shared_arguments(adapter()).__doc__.splitlines()
    names = [line.split(":")[0].strip() for line in lines if line.startswith("            ") and ":" in line
             and not line.startswith("                ")]
    assert names == ["config", *(arg.name for arg in SHARED), "extra"]


@pytest.mark.parametrize("changes, problem", [({"interval": 10}, "interval defaults to 10"),
                                              ({"log_dir": None}, "log_dir defaults to None"),
                                              ({"stop_on": []}, "stop_on defaults to []")])
def test_a_drifted_default_fails_when_the_class_is_defined(changes, problem):
    with pytest.raises(TypeError, match=re.escape(problem)):
        shared_arguments(adapter(**changes))



def test_a_missing_or_positional_argument_or_an_undocumented_one_fails():
    class Missing:
        def __init__(self, config=None, *, stop_on: Iterable[str] = ()) -> None:
            pass

    class Positional:
        def __init__(self, config=None, stop_on: Iterable[str] = ()) -> None:
            pass

    for cls in (Missing, Positional):
        with pytest.raises(TypeError, match="must take the keyword-only argument"):
            shared_arguments(cls)
    undocumented = adapter()
    undocumented.__doc__ = "An adapter.\n\n    Args:\n        config: the config.\n"
    with pytest.raises(TypeError, match=re.escape("without a '{shared arguments}' line")):
        shared_arguments(undocumented)


def test_a_different_annotation_fails():
    class Annotated:
        def __init__(self, config=None, *, stop_on: Iterable[str] = (), interval: int = None,  # noqa: RUF013
                     log_dir: str | bool | FromConfig | None = FROM_CONFIG,
                     strict: bool | None = None, run_name: str | None = None) -> None:
            pass

    with pytest.raises(TypeError, match="interval is annotated 'int'"):
        shared_arguments(Annotated)


def test_the_config_value_sentinel_reads_well_and_survives_copies():
    import copy
    import pickle

    assert repr(FROM_CONFIG) == "FROM_CONFIG"
    assert copy.deepcopy(FROM_CONFIG) is FROM_CONFIG and pickle.loads(pickle.dumps(FROM_CONFIG)) is FROM_CONFIG


def test_the_objects_an_adapter_watches_may_come_before_config_without_defaults():
    class Watching:
        def __init__(self, model, optimizer, config=None, *, stop_on: Iterable[str] = (),
                     interval: int | None = None, log_dir: str | bool | FromConfig | None = FROM_CONFIG,
                     strict: bool | None = None, run_name: str | None = None) -> None:
            pass

    class Defaulted:
        def __init__(self, model=None, config=None, *, stop_on: Iterable[str] = (),
                     interval: int | None = None, log_dir: str | bool | FromConfig | None = FROM_CONFIG,
                     strict: bool | None = None, run_name: str | None = None) -> None:
            pass

    assert shared_arguments(Watching) is Watching
    with pytest.raises(TypeError, match="must take `config=None` as its first argument"):
        shared_arguments(Defaulted)
