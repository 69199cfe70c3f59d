"""`import tripwire` must import no ML framework; the core env must not even have one."""

import importlib.util
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "tensorflow", "keras", "xgboost", "lightning", "pytorch_lightning", "jax", "dask")


def test_import_tripwire_loads_no_framework():
    code = ("import sys, tripwire, tripwire.rules, tripwire.cli; "
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
