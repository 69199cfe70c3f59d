"""Failures the compatibility matrix found in tripwire, pending a fix: ``{"<framework>:<case>": why}``.

The framework is the first word of the suite (``keras``, ``torch``, ``xgboost``), so an entry
covers every Keras backend. A listed case that fails is reported ``known``; one that passes is
reported ``fixed``, so that its entry can go (see ``_compat_core.apply_known``).

Example:
    >>> all(key.split(":")[0] in ("keras", "torch", "xgboost") for key in KNOWN)
    True
"""

_NESTED = ("missing: the activation probes walk `model.layers` only, so the activation of a layer inside "
           "a wrapper (TimeDistributed, SpectralNormalization) is neither probed nor named in a warning")

KNOWN: dict[str, str] = {
    **{f"keras:{name}": _NESTED for name in ("TimeDistributed", "SpectralNormalization")},
}
