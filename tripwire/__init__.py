"""tripwire: catch broken training runs while they happen.

``import tripwire`` imports no ML framework; the callbacks load theirs on first use, and when it
is not installed the ``ImportError`` names the extra that installs it (``pip install "tripwire[xgboost]"``).

Example:
    >>> import tripwire, sys
    >>> "torch" in sys.modules and "tripwire.callbacks.lightning" not in sys.modules
    False
    >>> tripwire.Config.load({"interval": 20}).interval
    20
"""

from __future__ import annotations

from typing import Any

from tripwire.config import Config
from tripwire.errors import ConfigError, RuleError, RuleTriggered, TripwireError
from tripwire.finding import Finding
from tripwire.monitor import Monitor
from tripwire.registry import register
from tripwire.rule import Need, Rule, RuleParams, Verdict
from tripwire.stats import Sample

__version__ = "0.1.0"

_LAZY = {
    "LightningTripwire": "tripwire.callbacks.lightning",
    "KerasTripwire": "tripwire.callbacks.keras",
    "XGBoostTripwire": "tripwire.callbacks.xgboost",
    "Run": "tripwire.record",
    "observe": "tripwire.observe",
}

__all__ = ["Config", "ConfigError", "Finding", "KerasTripwire", "LightningTripwire", "Monitor", "Need", "Rule",
           "RuleError", "RuleParams", "RuleTriggered", "Run", "Sample", "TripwireError", "Verdict",
           "XGBoostTripwire", "observe", "register"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tripwire' has no attribute {name!r}")
