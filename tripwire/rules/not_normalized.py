"""`not_normalized`: input features far from zero mean and unit scale."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.stats import Sample

_SHOWN = 3  # features named in the message
_KEPT = 20  # features kept in the evidence

_SUMS = ("input_count", "input_sum", "input_sumsq")


@register
class NotNormalized(Rule):
    """Fire when, after ``min_samples`` values per feature, some input features are far from zero mean / unit scale.

    Per feature the rule sums ``input_count``, ``input_sum`` and ``input_sumsq`` over the run and
    keeps the running ``input_min`` / ``input_max``; then

        mean = sum / count;   std = sqrt(max(sumsq / count - mean^2, 0))

    A feature is off when ``|mean| > threshold_mean`` or ``std`` is outside ``std_range``, unless
    all its values lie in ``[-bound, bound]``: data already scaled to [0, 1] or [-1, 1] (images
    in [0, 1], one-hot and binary columns, min-max scaled features) is fine whatever its mean and
    std. So standardized features (mean 0, std 1) and scaled ones stay silent, while raw prices
    (mean 1e5), ages (mean 40, std 12) or pixels in [0, 255] fire, as do mixed scales where one
    feature has std 1000 and another 1. Once ``min_samples`` is reached the rule judges at every
    sample: it fires (subject None) while any feature is off and clears when none is.

    Args:
        threshold_mean: largest acceptable |mean| of a feature. Defaults to 3.0.
        std_range: acceptable ``[low, high]`` std of a feature. Defaults to [0.01, 10.0].
        bound: features whose values all lie in ``[-bound, bound]`` count as scaled. Defaults to 1.0.
        min_samples: values per feature (rows, for tabular inputs) to see before judging (formerly
            ``samples``). Defaults to 500.

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
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold_mean", "upper", "log"),)

    class Params(RuleParams):
        """Parameters of `not_normalized`."""

        renamed: ClassVar[dict[str, str]] = {"samples": "min_samples"}
        threshold_mean: float = Field(3.0, gt=0, description="largest acceptable |mean| of a feature")
        std_range: tuple[float, float] = Field((0.01, 10.0), description="acceptable [low, high] standard "
                                                                         "deviation of a feature")
        bound: float = Field(1.0, ge=0, description="features whose values all lie in [-bound, bound] count as "
                                                    "already scaled and are never flagged")
        min_samples: int = Field(500, ge=1, description="values per feature (rows, for tabular inputs) to see "
                                                        "before judging")

        @model_validator(mode="after")
        def _ordered(self) -> NotNormalized.Params:
            low, high = self.std_range
            if not 0 <= low < high:
                raise ValueError(f"std_range must be [low, high] with 0 <= low < high, got [{low}, {high}]")
            return self

    def initial_state(self) -> dict[str, Any]:
        # One list per total, aligned with `features`; min/max hold NaN until a finite value is seen.
        return {"features": [], "count": [], "sum": [], "sumsq": [], "min": [], "max": []}

    def needs(self) -> list[Need]:
        return [Need(name) for name in (*_SUMS, "input_min", "input_max")]

    def check(self, sample: Sample) -> list[Verdict]:
        if sample.series("input_count") is None:
            return []
        self._accumulate(sample)
        st, p = self.state, self.params
        if not st["count"] or max(st["count"]) < p.min_samples:
            return []
        mean, std = self._moments()
        score = self._scores(mean, std)
        off_rows = np.flatnonzero(score > 1)
        order = off_rows[np.argsort(-score[off_rows], kind="stable")].tolist()
        if not order:
            return [self.clear(None)]
        off = [self._describe(i, float(score[i]), mean, std) for i in order[:_KEPT]]
        low, high = p.std_range
        named = ", ".join(f"{f['feature']} (mean {f['mean']:.3g}, std {f['std']:.3g})" for f in off[:_SHOWN])
        more = f" and {len(order) - _SHOWN} more" if len(order) > _SHOWN else ""
        worst = _worst(off[0], p)
        return [self.fire(
            None, value=worst["value"], threshold=worst["limit"],
            message=f"{len(order)} of {len(st['count'])} input features are far from zero mean / unit scale at "
                    f"step {sample.step}: {named}{more}; the worst, {worst['feature']}, has {worst['quantity']} "
                    f"{worst['value']:.3g} {worst['compare']} {worst['limit']:g} (limits |mean| <= "
                    f"{p.threshold_mean:g}, std in [{low:g}, {high:g}]); unscaled inputs slow or stall training",
            suggestion="standardize each feature with training-set statistics (sklearn StandardScaler, "
                       "keras.layers.Normalization adapted on the training data, torchvision Normalize), "
                       "log-transform heavy-tailed positive features (prices, counts), scale images to [0, 1]",
            features=off, worst=worst, features_off=len(order))]

    def _accumulate(self, sample: Sample) -> None:
        """Add the sample's per-feature totals (non-finite values are left out) with numpy: wide
        inputs have thousands of features."""
        st = self.state
        subjects = list(sample.series("input_count") or {})
        names, rows = self._rows(subjects)
        for stat in (*_SUMS, "input_min", "input_max"):
            key = stat.removeprefix("input_")
            values = _aligned(sample.series(stat) or {}, names, subjects)
            finite = np.isfinite(values)
            total = np.asarray(st[key], dtype=np.float64)
            if key == "min":
                total[rows] = np.fmin(total[rows], np.where(finite, values, np.nan))
            elif key == "max":
                total[rows] = np.fmax(total[rows], np.where(finite, values, np.nan))
            else:
                total[rows] += np.where(finite, values, 0.0)
            st[key] = total.tolist()

    def _rows(self, subjects: list[str | None]) -> tuple[list[str], np.ndarray]:
        """The feature names of ``subjects`` and their rows in the state, new features added.

        Every sample of a run usually holds the same features in the same order: the answer for
        the last ``subjects`` is kept while the state's feature list is the same one, unchanged.
        """
        st = self.state
        kept = getattr(self, "_kept_rows", None)
        if kept is not None and kept[0] is st["features"] and kept[1] == len(st["features"]) and kept[2] == subjects:
            return kept[3], kept[4]
        names = [_feature(k) for k in subjects]
        index = {name: i for i, name in enumerate(st["features"])}
        for name in names:
            if name not in index:
                index[name] = len(st["features"])
                st["features"].append(name)
                for key, empty in (("count", 0.0), ("sum", 0.0), ("sumsq", 0.0), ("min", math.nan), ("max", math.nan)):
                    st[key].append(empty)
        rows = np.fromiter((index[n] for n in names), dtype=np.int64, count=len(names))
        self._kept_rows = (st["features"], len(st["features"]), subjects, names, rows)
        return names, rows

    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of every feature (0 where nothing was counted)."""
        st = self.state
        n = np.asarray(st["count"], dtype=np.float64)
        safe = np.where(n > 0, n, 1.0)
        mean = np.where(n > 0, np.asarray(st["sum"]) / safe, 0.0)
        var = np.where(n > 0, np.asarray(st["sumsq"]) / safe - mean * mean, 0.0)
        return mean, np.sqrt(np.maximum(var, 0.0))

    def _scores(self, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """Off-score of every feature (> 1 means off); 0 for scaled or uncounted features."""
        st, p = self.state, self.params
        n = np.asarray(st["count"], dtype=np.float64)
        lo, hi = np.asarray(st["min"], dtype=np.float64), np.asarray(st["max"], dtype=np.float64)
        low, high = p.std_range
        with np.errstate(divide="ignore", invalid="ignore"):
            too_narrow = np.where(std > 0, low / np.where(std > 0, std, 1.0), math.inf if low > 0 else 0.0)
        score = np.maximum(np.maximum(np.abs(mean) / p.threshold_mean, std / high), too_narrow)
        scaled = (lo >= -p.bound) & (hi <= p.bound)  # NaN (never seen) compares False: not scaled
        return np.where(scaled | (n <= 0), 0.0, score)

    def _describe(self, i: int, score: float, mean: np.ndarray, std: np.ndarray) -> dict[str, Any]:
        """Mean, std, range and off-score of feature number ``i``, for the evidence."""
        st = self.state
        lo, hi = st["min"][i], st["max"][i]
        return {"feature": st["features"][i], "mean": float(mean[i]), "std": float(std[i]),
                "min": None if math.isnan(lo) else lo, "max": None if math.isnan(hi) else hi, "score": score}


def _worst(feature: dict[str, Any], p: NotNormalized.Params) -> dict[str, Any]:
    """The limit the worst feature breaks most: its ``quantity`` (``|mean|`` or ``std``), ``value``
    and ``limit`` are the finding's value and threshold.

    Example:
        >>> p = NotNormalized.Params()
        >>> _worst({"feature": "price", "mean": 1e5, "std": 1e4}, p)["quantity"]
        '|mean|'
        >>> w = _worst({"feature": "id", "mean": 0.0, "std": 0.001}, p)
        >>> w["quantity"], w["compare"], w["limit"]
        ('std', '<', 0.01)
    """
    low, high = p.std_range
    mean, std = abs(feature["mean"]), feature["std"]
    ways = [(mean / p.threshold_mean, "|mean|", mean, ">", p.threshold_mean), (std / high, "std", std, ">", high),
            (low / std if std > 0 else math.inf, "std", std, "<", low)]
    _, quantity, value, compare, limit = max(ways, key=lambda w: w[0])
    return {"feature": feature["feature"], "quantity": quantity, "value": value, "compare": compare, "limit": limit}


def _aligned(series: dict, names: list[str], subjects: list[str | None] | None = None) -> np.ndarray:
    """The series' values in the order of ``names`` (NaN where a feature is missing); ``subjects``:
    the raw subjects ``names`` were made from, when known (a series keyed by exactly those, in that
    order, needs no lookup)."""
    if subjects is not None and len(series) == len(subjects) and list(series) == subjects:
        return np.fromiter(series.values(), dtype=np.float64, count=len(names))
    keys = [_feature(k) for k in series]
    if keys == names:
        return np.fromiter(series.values(), dtype=np.float64, count=len(names))
    by_name = dict(zip(keys, series.values()))
    return np.fromiter((by_name.get(n, math.nan) for n in names), dtype=np.float64, count=len(names))


def _feature(subject: str | None) -> str:
    return "input" if subject is None else str(subject)
