"""`import tripwire` (and `tripwire.kit`) must import no ML framework; the core env must not even have one."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

HEAVY = ("torch", "tensorflow", "keras", "xgboost", "lightning", "pytorch_lightning", "jax", "dask", "transformers")


def test_import_tripwire_loads_no_framework():
    code = ("import sys, tripwire, tripwire.rules, tripwire.cli, tripwire.kit, tripwire.kit.data; "
            "tripwire.Config.load({'rules': {'nonfinite': {'actions': ['alert', 'json:dumps']}, "
            "'mine': {'type': 'tripwire.rules.nonfinite:Nonfinite'}}}); "
            f"print(sorted(set(sys.modules) & set({HEAVY!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.skipif(not os.environ.get("TRIPWIRE_EXPECT_NO_FRAMEWORKS"), reason="only in the core env")
def test_core_env_has_no_framework_installed():
    present = [name for name in HEAVY if importlib.util.find_spec(name) is not None]
    assert present == []


def test_lazy_callback_attribute_names_the_missing_framework_or_loads():
    import tripwire

    with pytest.raises(AttributeError):
        tripwire.NoSuchThing  # noqa: B018 - the attribute access is what raises


# Imports each adapter with its framework refused by an import hook, so the test needs nothing
# uninstalled and runs the same in the core env (where the frameworks are really missing).
WITHOUT_FRAMEWORKS = """
import importlib.abc, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("lightning", "pytorch_lightning", "keras", "xgboost", "torch", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Refuse())
errors = {}
for statement in sys.argv[1:]:
    try:
        exec(statement, {})
    except ImportError as exc:
        errors[statement] = [type(exc).__name__, str(exc), exc.name]
print(json.dumps(errors))
"""

LIGHTNING = ('LightningTripwire needs PyTorch Lightning: pip install "tripwire[lightning]", or '
             '"tripwire[pytorch-lightning]" for the standalone pytorch_lightning package', "lightning")
KERAS = ('KerasTripwire needs Keras 3: pip install "tripwire[keras]", or "tripwire[keras-jax]" for the JAX backend',
         "keras")
XGBOOST = ('XGBoostTripwire needs XGBoost: pip install "tripwire[xgboost]"', "xgboost")
TORCH = ('tripwire.torch.Tripwire needs PyTorch: pip install "tripwire[torch]"', "torch")
TRANSFORMERS = ('tripwire.transformers.TripwireCallback needs Hugging Face transformers: '
                'pip install "tripwire[transformers]"', "transformers")
MISSING = {
    "from tripwire import LightningTripwire": LIGHTNING,
    "from tripwire.callbacks.lightning import LightningTripwire": LIGHTNING,
    "from tripwire.callbacks.pytorch_lightning import PLTripwire": LIGHTNING,  # the same class, by its old name
    "from tripwire import KerasTripwire": KERAS,
    "from tripwire.callbacks.keras import KerasTripwire": KERAS,
    "import tripwire.callbacks.keras.collector": KERAS,  # any module of the wing: its package imports Keras
    "from tripwire import XGBoostTripwire": XGBOOST,
    "from tripwire.callbacks.xgboost import XGBoostTripwire": XGBOOST,
    "from tripwire.torch import Tripwire": TORCH,
    "from tripwire.callbacks.torch.loop import Tripwire": TORCH,
    "from tripwire.transformers import TripwireCallback": TRANSFORMERS,
}


def test_a_missing_framework_names_the_extra_that_installs_it():
    out = subprocess.run([sys.executable, "-c", WITHOUT_FRAMEWORKS, *MISSING], capture_output=True, text=True,
                         check=True)
    errors = json.loads(out.stdout)
    for statement, (advice, module) in MISSING.items():
        assert errors[statement] == ["ModuleNotFoundError", f"{advice} (No module named '{module}')", module]


def test_the_extras_named_exist_in_pyproject():
    tomllib = pytest.importorskip("tomllib")
    from tripwire.callbacks.missing_framework import INSTALL

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = {extra for _, install in INSTALL.values() for extra in re.findall(r"tripwire\[([\w-]+)\]", install)}
    assert named and named <= set(extras), named - set(extras)


# The public ways in (the README's imports, LightningCLI's ``class_path``) name the same classes
# whatever the modules behind them are called: (module, class, where else it is public, framework).
PUBLIC = [
    ("tripwire.callbacks.lightning", "LightningTripwire", "tripwire", "lightning"),
    ("tripwire.callbacks.lightning", "PLTripwire", "tripwire.callbacks.pytorch_lightning", "lightning"),
    ("tripwire.callbacks.keras", "KerasTripwire", "tripwire", "keras"),
    ("tripwire.callbacks.xgboost", "XGBoostTripwire", "tripwire", "xgboost"),
    ("tripwire.callbacks.torch.loop", "Tripwire", "tripwire.torch", "torch"),
    ("tripwire.callbacks.torch.hf_trainer", "TripwireCallback", "tripwire.transformers", "transformers"),
]


@pytest.mark.parametrize("module, name, also, framework", PUBLIC)
def test_the_public_import_paths_name_the_same_class(module, name, also, framework):
    pytest.importorskip(framework)
    cls = getattr(importlib.import_module(module), name)
    assert isinstance(cls, type) and getattr(importlib.import_module(also), name) is cls


# Each wing, and the kit's module for it, imports its own framework and none of the others' (Keras
# with the TensorFlow backend; Keras itself may load JAX when it is installed): modules -> (needed,
# allowed besides).
WINGS = [
    (["tripwire.callbacks.lightning", "tripwire.callbacks.pytorch_lightning", "tripwire.kit.lightning"],
     {"lightning", "pytorch_lightning", "torch"}, {"transformers"}),  # Lightning loads it when installed
    (["tripwire.callbacks.keras", "tripwire.kit.keras"], {"keras", "tensorflow"}, {"jax"}),
    (["tripwire.callbacks.xgboost"], {"xgboost"}, set()),
    (["tripwire.torch", "tripwire.kit.torch"], {"torch"}, set()),
    (["tripwire.transformers"], {"transformers", "torch"}, set()),  # the real transformers, not shadowed
]
LOADED = ("import importlib, json, sys\nfor module in sys.argv[1:]:\n    importlib.import_module(module)\n"
          "print(json.dumps(list(sys.modules)))")


@pytest.mark.parametrize("modules, needed, allowed", WINGS,
                         ids=["lightning", "keras", "xgboost", "torch", "transformers"])
def test_each_wing_imports_its_own_framework_only(modules, needed, allowed):
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{modules} need {missing}")
    out = subprocess.run([sys.executable, "-c", LOADED, *modules], capture_output=True, text=True, check=True,
                         env={**os.environ, "KERAS_BACKEND": "tensorflow"})
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)} & set(HEAVY)
    assert needed <= loaded <= needed | allowed, loaded
