"""The three callbacks and the Monitor behind them take the same arguments for what they share:
the config, the overrides of the public contract and the run metadata of the record (read from the
source: no framework needed). Every override defaults to "the config's value": ``None``, except
``log_dir``, whose ``None`` means "no run record" as in YAML, and which defaults to ``FROM_CONFIG``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tripwire"
SHARED = ("stop_on", "interval", "log_dir", "strict", "run_name")
FROM_THE_CONFIG = {"interval": "None", "log_dir": "FROM_CONFIG", "strict": "None", "run_name": "None"}


def init_args(file: str, cls: str) -> tuple[list[str], dict[str, str]]:
    """Positional argument names and ``{keyword-only name: default source}`` of ``cls.__init__``."""
    tree = ast.parse((PACKAGE / file).read_text(encoding="utf-8"))
    [node] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    [init] = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    a = init.args
    return [x.arg for x in a.args], {x.arg: ast.unparse(d) for x, d in zip(a.kwonlyargs, a.kw_defaults)}


@pytest.mark.parametrize("file, cls", [("callbacks/torch/lightning.py", "TripwireCallbackImpl"),
                                       ("callbacks/keras/callback.py", "KerasTripwire"),
                                       ("callbacks/xgboost/callback.py", "XGBoostTripwire"), ("monitor.py", "Monitor")])
def test_each_callback_takes_the_shared_arguments(file, cls):
    positional, keywords = init_args(file, cls)
    assert positional == ["self", "config"]
    missing = [name for name in SHARED if name not in keywords]
    assert not missing, f"{cls} lacks keyword argument(s) {missing}"
    assert {name: keywords[name] for name in FROM_THE_CONFIG} == FROM_THE_CONFIG


def test_the_config_value_sentinel_reads_well_and_survives_copies():
    import copy
    import pickle

    from tripwire.config import FROM_CONFIG

    assert repr(FROM_CONFIG) == "FROM_CONFIG"
    assert copy.deepcopy(FROM_CONFIG) is FROM_CONFIG and pickle.loads(pickle.dumps(FROM_CONFIG)) is FROM_CONFIG
