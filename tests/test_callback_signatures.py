"""The three callbacks take the same arguments for what they share: the config, the overrides of
the public contract and the run metadata of the record (read from the source: no framework needed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CALLBACKS = Path(__file__).resolve().parents[1] / "tripwire" / "callbacks"
SHARED = ("stop_on", "interval", "log_dir", "strict", "run_name")


def init_args(file: str, cls: str) -> tuple[list[str], dict[str, str]]:
    """Positional argument names and ``{keyword-only name: default source}`` of ``cls.__init__``."""
    tree = ast.parse((CALLBACKS / file).read_text(encoding="utf-8"))
    [node] = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    [init] = [n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    a = init.args
    return [x.arg for x in a.args], {x.arg: ast.unparse(d) for x, d in zip(a.kwonlyargs, a.kw_defaults)}


@pytest.mark.parametrize("file, cls", [("_lightning_impl.py", "TripwireCallbackImpl"), ("keras.py", "KerasTripwire"),
                                       ("xgboost.py", "XGBoostTripwire")])
def test_each_callback_takes_the_shared_arguments(file, cls):
    positional, keywords = init_args(file, cls)
    assert positional == ["self", "config"]
    missing = [name for name in SHARED if name not in keywords]
    assert not missing, f"{cls} lacks keyword argument(s) {missing}"
    assert keywords["run_name"] == "None" and keywords["interval"] == "None" and keywords["log_dir"] == "None"
