"""`not_normalized`: input features far from zero mean and unit scale."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field, model_validator

from tripwire.registry import register
from tripwire.rule import Need, Rule, RuleParams, Verdict
from tripwire.stats import Sample

_SHOWN = 3  # features named in the message
_KEPT = 20  # features kept in the evidence

_SUMS = ("input_count", "input_sum", "input_sumsq")


@register
class NotNormalized(Rule):
    """Fire when, after ``samples`` values per feature, some input features are far from zero mean / unit scale.

    Per feature the rule sums ``input_count``, ``input_sum`` and ``input_sumsq`` over the run and
    keeps the running ``input_min`` / ``input_max``; then

        mean = sum / count;   std = sqrt(max(sumsq / count - mean^2, 0))

    A feature is off when ``|mean| > threshold_mean`` or ``std`` is outside ``std_range``, unless
    all its values lie in ``[-bound, bound]``: data already scaled to [0, 1] or [-1, 1] (images
    in [0, 1], one-hot and binary columns, min-max scaled features) is fine whatever its mean and
    std. So standardized features (mean 0, std 1) and scaled ones stay silent, while raw prices
    (mean 1e5), ages (mean 40, std 12) or pixels in [0, 255] fire, as do mixed scales where one
    feature has std 1000 and another 1. Once ``samples`` is reached the rule judges at every
    sample: it fires (subject None) while any feature is off and clears when none is.

    Args:
        threshold_mean: largest acceptable |mean| of a feature. Defaults to 3.0.
        std_range: acceptable ``[low, high]`` std of a feature. Defaults to [0.01, 10.0].
        bound: features whose values all lie in ``[-bound, bound]`` count as scaled. Defaults to 1.0.
        samples: values per feature (rows, for tabular inputs) to see before judging. Defaults to 500.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = NotNormalized("not_normalized")
        >>> s = Sample(10, stats={"input_count": {"price": 600.0, "x": 600.0},
        ...                       "input_sum": {"price": 6.0e7, "x": 3.0},
        ...                       "input_sumsq": {"price": 6.6e12, "x": 600.0},
        ...                       "input_min": {"price": 2.0e4, "x": -3.1}, "input_max": {"price": 3.0e5, "x": 2.9}})
        >>> [(v.fired, v.evidence["features"][0]["feature"]) for v in rule.check(s)]
        [(True, 'price')]
    """

    kind = "not_normalized"
    summary = "input features far from zero mean / unit scale ([0,1] or [-1,1] scaled data is fine)"
    frameworks: ClassVar[tuple[str, ...]] = ("torch", "keras")

    class Params(RuleParams):
        """Parameters of `not_normalized`."""

        threshold_mean: float = Field(3.0, gt=0, description="largest acceptable |mean| of a feature")
        std_range: tuple[float, float] = Field((0.01, 10.0), description="acceptable [low, high] standard "
                                                                         "deviation of a feature")
        bound: float = Field(1.0, ge=0, description="features whose values all lie in [-bound, bound] count as "
                                                    "already scaled and are never flagged")
        samples: int = Field(500, ge=1, description="values per feature (rows, for tabular inputs) to see "
                                                    "before judging")

        @model_validator(mode="after")
        def _ordered(self) -> NotNormalized.Params:
            low, high = self.std_range
            if not 0 <= low < high:
                raise ValueError(f"std_range must be [low, high] with 0 <= low < high, got [{low}, {high}]")
            return self

    def initial_state(self) -> dict[str, Any]:
        return {"count": {}, "sum": {}, "sumsq": {}, "min": {}, "max": {}}

    def needs(self) -> list[Need]:
        return [Need(name) for name in (*_SUMS, "input_min", "input_max")]

    def check(self, sample: Sample) -> list[Verdict]:
        if sample.series("input_count") is None:
            return []
        self._accumulate(sample)
        st, p = self.state, self.params
        if not st["count"] or max(st["count"].values()) < p.samples:
            return []
        off = sorted((f for f in map(self._describe, st["count"]) if f["score"] > 1), key=lambda f: -f["score"])
        if not off:
            return [self.clear(None)]
        low, high = p.std_range
        named = ", ".join(f"{f['feature']} (mean {f['mean']:.3g}, std {f['std']:.3g})" for f in off[:_SHOWN])
        more = f" and {len(off) - _SHOWN} more" if len(off) > _SHOWN else ""
        return [self.fire(
            None, value=len(off), threshold=0,
            message=f"{len(off)} of {len(st['count'])} input features are far from zero mean / unit scale at step "
                    f"{sample.step}: {named}{more} (limits |mean| <= {p.threshold_mean:g}, std in "
                    f"[{low:g}, {high:g}]); unscaled inputs slow or stall training",
            suggestion="standardize each feature with training-set statistics (sklearn StandardScaler, "
                       "keras.layers.Normalization adapted on the training data, torchvision Normalize), "
                       "log-transform heavy-tailed positive features (prices, counts), scale images to [0, 1]",
            features=off[:_KEPT])]

    def _accumulate(self, sample: Sample) -> None:
        st = self.state
        for stat in _SUMS:
            totals = st[stat.removeprefix("input_")]
            for subject, value in (sample.series(stat) or {}).items():
                if math.isfinite(value):
                    key = _feature(subject)
                    totals[key] = totals.get(key, 0.0) + float(value)
        for stat, pick in (("input_min", min), ("input_max", max)):
            extremes = st[stat.removeprefix("input_")]
            for subject, value in (sample.series(stat) or {}).items():
                if math.isfinite(value):
                    key = _feature(subject)
                    extremes[key] = pick(extremes.get(key, value), float(value))

    def _describe(self, feature: str) -> dict[str, Any]:
        """Mean, std, range and an off-score (> 1 means off) of one feature."""
        st, p = self.state, self.params
        n = st["count"][feature]
        mean = st["sum"].get(feature, 0.0) / n if n else 0.0
        std = math.sqrt(max(st["sumsq"].get(feature, 0.0) / n - mean * mean, 0.0)) if n else 0.0
        lo, hi = st["min"].get(feature), st["max"].get(feature)
        low, high = p.std_range
        scaled = lo is not None and hi is not None and -p.bound <= lo and hi <= p.bound
        too_narrow = low / std if std > 0 else (math.inf if low > 0 else 0.0)
        score = 0.0 if scaled or not n else max(abs(mean) / p.threshold_mean, std / high, too_narrow)
        return {"feature": feature, "mean": mean, "std": std, "min": lo, "max": hi, "score": score}


def _feature(subject: str | None) -> str:
    return "input" if subject is None else str(subject)
