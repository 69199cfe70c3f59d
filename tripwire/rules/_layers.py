"""Helpers shared by the per-layer network rules: which subjects to skip, and runs of
consecutive samples kept in a rule's plain-dict ``state``.

A *run* is the number of consecutive samples in which a subject met a condition, plus the step
where the run began; it survives JSON (a two-item list) and resets when the condition fails.

Example:
    >>> runs = {}
    >>> [advance(runs, "fc1.weight", hit, step) for hit, step in [(True, 10), (True, 20), (False, 30), (True, 40)]]
    [(1, 10), (2, 10), (0, 30), (1, 40)]
    >>> is_bias("encoder/dense/bias:0"), is_bias("attn.in_proj_bias"), is_bias("fc1.weight")
    (True, True, False)
    >>> skipped("head.weight", ignore=("head.*",), include_biases=True)
    True
"""

from __future__ import annotations

import math
import re
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Literal

from pydantic import Field

from tripwire.rule import RuleParams

_SEPARATORS = re.compile(r"[./:]")


#: What ``all_zero``/``low_variance`` look at, and the statistic prefix of each choice.
Target = Literal["weights", "gradients", "activations"]
TARGET_PREFIX: dict[str, str] = {"weights": "weight", "gradients": "grad", "activations": "act"}


class LayerParams(RuleParams):
    """Parameters every per-layer rule accepts."""

    ignore: tuple[str, ...] = Field((), description="glob patterns of parameter/layer names this rule skips, "
                                                    "e.g. ['head.*', 'lora_B*']")


@lru_cache(maxsize=4096)  # called per parameter per rule per sample, always with the same names
def is_bias(name: str) -> bool:
    """Whether a parameter name is a bias vector or a Keras normalization scale/shift (``fc.bias``,
    ``dense/bias:0``, ``lstm.bias_hh_l0``, ``attn.in_proj_bias``, ``batch_normalization/beta``)."""
    parts = [p for p in _SEPARATORS.split(name) if p and not p.isdigit()]
    return bool(parts) and (parts[-1].startswith("bias") or parts[-1].endswith("_bias")
                            or parts[-1] in ("beta", "gamma"))


def remember_ndims(state: dict, sample) -> dict[str, int]:  # noqa: ANN001 - a Sample
    """The parameter dimensions seen so far (``param_ndim``, sent with the first sample), kept in
    ``state["ndim"]`` so that they survive checkpoints.

    Example:
        >>> from tripwire.stats import Sample
        >>> state = {}
        >>> remember_ndims(state, Sample(0, stats={"param_ndim": {"bn.weight": 1.0, "conv.weight": 4.0}}))
        {'bn.weight': 1, 'conv.weight': 4}
        >>> is_vector("bn.weight", state["ndim"]), is_vector("conv.weight", state["ndim"]), is_vector("fc.bias", {})
        (True, False, True)
    """
    ndims = state.setdefault("ndim", {})
    seen = sample.series("param_ndim")
    if seen:
        ndims.update({str(k): int(v) for k, v in seen.items() if k is not None and math.isfinite(v)})
    return ndims


def is_vector(name: str, ndims: dict[str, int]) -> bool:
    """Whether parameter ``name`` is a bias or another 1-D parameter (a normalization scale or
    shift): from its recorded dimensions or its name (a Keras attention bias is 2-D). Gradient and
    update sizes of such vectors say little: a bias before BatchNorm has no effect on the loss, and
    the shift of a normalization after a linear bottleneck gets gradients of ~1e-8 in healthy
    MobileNets."""
    ndim = ndims.get(name)
    return (ndim is not None and ndim <= 1) or is_bias(name)  # Keras attention biases are 2-D


@lru_cache(maxsize=16384)
def skipped(subject: str | None, ignore: tuple[str, ...], include_biases: bool = True) -> bool:
    """Whether a rule leaves ``subject`` out: it matches an ``ignore`` pattern, or it is a bias and
    biases are not included."""
    if subject is None:
        return False
    if not include_biases and is_bias(subject):
        return True
    return any(fnmatchcase(subject, pattern) for pattern in ignore)


def advance(runs: dict[str, list[int]], subject: str, hit: bool, step: int) -> tuple[int, int]:
    """Extend (``hit``) or reset the run of ``subject``; return its length and first step."""
    if not hit:
        runs.pop(subject, None)
        return 0, step
    length, since = runs.get(subject, (0, step))
    runs[subject] = [length + 1, since]
    return length + 1, since


def finite_items(values: dict[str | None, float] | None) -> list[tuple[str, float]]:
    """The ``(subject, value)`` pairs of a series with a finite value (NaN/Inf is ``nonfinite``'s job)."""
    if not values:
        return []
    return [(s, float(v)) for s, v in values.items() if s is not None and math.isfinite(v)]


def steps(since: int, step: int) -> str:
    """``"step 40"`` or ``"steps 20..40"``."""
    return f"step {step}" if since == step else f"steps {since}..{step}"
