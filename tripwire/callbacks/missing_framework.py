"""The error for a callback whose framework is not installed: it names the extra to install.

Each adapter module imports its framework first and turns a ``ModuleNotFoundError`` into this
one, so ``from tripwire import XGBoostTripwire`` without XGBoost says how to get it. It stays a
``ModuleNotFoundError`` (an ``ImportError``), with the missing module in ``name``, so
``except ImportError`` keeps working.

Example:
    >>> try:
    ...     import no_such_framework
    ... except ModuleNotFoundError as exc:
    ...     error = missing_framework("XGBoostTripwire", exc)
    >>> print(error)
    XGBoostTripwire needs XGBoost: pip install "tripwire[xgboost]" (No module named 'no_such_framework')
    >>> isinstance(error, ImportError), error.name
    (True, 'no_such_framework')
"""

from __future__ import annotations

#: callback -> (its framework, as users call it; how to install it: the extras of pyproject.toml)
INSTALL = {
    "LightningTripwire": ("PyTorch Lightning", 'pip install "tripwire[lightning]", or "tripwire[pytorch-lightning]" '
                                               "for the standalone pytorch_lightning package"),
    "KerasTripwire": ("Keras 3", 'pip install "tripwire[keras]", or "tripwire[keras-jax]" for the JAX backend'),
    "XGBoostTripwire": ("XGBoost", 'pip install "tripwire[xgboost]"'),
    "tripwire.transformers.TripwireCallback": ("Hugging Face transformers", 'pip install "tripwire[transformers]"'),
    "tripwire.torch.Tripwire": ("PyTorch", 'pip install "tripwire[torch]"'),
}


def missing_framework(callback: str, exc: ModuleNotFoundError) -> ModuleNotFoundError:
    """The error to raise, ``from exc``, when importing ``callback``'s framework raised ``exc``."""
    framework, install = INSTALL[callback]
    return ModuleNotFoundError(f"{callback} needs {framework}: {install} ({exc})", name=exc.name)
