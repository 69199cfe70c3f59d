"""Helpers shared by the per-layer network rules: which subjects to skip, and the loop every one
of them runs (:func:`judge_layers`), so that a rule keeps only its condition and its message.

Example:
    >>> is_bias("encoder/dense/bias:0"), is_bias("attn.in_proj_bias"), is_bias("fc1.weight")
    (True, True, False)
    >>> skipped("head.weight", ignore=("head.*",), include_biases=True)
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Literal, TypeVar

from pydantic import Field

from tripwire.rule import Rule, RuleParams, Verdict
from tripwire.rules._streak import Streak, advance, end

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
    return _vector(name, ndims.get(name))


def _vector(name: str, ndim: int | None) -> bool:
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


@lru_cache(maxsize=16384)  # judge_layers asks it for every subject at every sample, with the same few answers
def _left_out(subject: str, ignore: tuple[str, ...], vectors: bool, ndim: int | None) -> bool:
    """Whether :func:`judge_layers` leaves ``subject`` out: it matches ``ignore``, or ``vectors`` are
    left out and it is one (``ndim``: its recorded dimensions; see :func:`is_vector`)."""
    return skipped(subject, ignore) or (vectors and _vector(subject, ndim))


def finite_items(values: dict[str | None, float] | None) -> list[tuple[str, float]]:
    """The ``(subject, value)`` pairs of a series with a finite value (NaN/Inf is ``nonfinite``'s job)."""
    if not values:
        return []
    return [(s, float(v)) for s, v in values.items() if s is not None and math.isfinite(v)]


V = TypeVar("V")


def judge_layers(rule: Rule, items: Iterable[tuple[str, V]], step: int, *, patience: int,
                 counts: Callable[[V], bool], fire: Callable[[str, V, Streak], Verdict],
                 ndims: dict[str, int] | None = None) -> list[Verdict]:
    """The loop of the per-layer rules, with the verdict semantics of :mod:`tripwire.rules._streak`.

    For each ``(subject, value)`` of ``items``, in order, the subject's streak in
    ``rule.state["runs"]`` is extended when ``counts(value)`` and ended otherwise; its verdict is
    ``fire(subject, value, streak)`` once the streak has reached ``patience``, and a clear before.
    Left out, with no verdict: subjects matching the ``ignore`` patterns of ``rule.params`` and,
    when ``ndims`` is given, 1-D parameters (see :func:`is_vector`). Subjects absent from
    ``items`` get no verdict either and keep their streak.

    Example:
        >>> from tripwire.rules.dead_relu import DeadRelu
        >>> rule = DeadRelu("dead_relu")
        >>> def fire(layer, share, streak):
        ...     return rule.fire(layer, value=share, threshold=0.5, message=f"{streak.count} at {streak.steps}",
        ...                      suggestion="")
        >>> for step in (10, 20):
        ...     verdicts = judge_layers(rule, [("fc1", 0.9), ("fc2", 0.1)], step, patience=2,
        ...                             counts=lambda share: share > 0.5, fire=fire)
        >>> [(v.subject, v.fired, v.message) for v in verdicts]
        [('fc1', True, '2 at steps 10..20'), ('fc2', False, '')]
    """
    out = []
    runs, ignore, vectors = rule.state["runs"], rule.params.ignore, ndims is not None
    for subject, value in items:
        if _left_out(subject, ignore, vectors, ndims.get(subject) if vectors else None):
            continue
        if not counts(value):  # the usual case: the streak ends, and a subject without one cannot fire
            end(runs, subject)
            out.append(rule.clear(subject))
            continue
        streak = advance(runs, subject, True, step)
        out.append(fire(subject, value, streak) if streak.reached(patience) else rule.clear(subject))
    return out
