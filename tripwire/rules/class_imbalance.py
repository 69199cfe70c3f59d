"""`class_imbalance`: one class's training labels outnumber another's by far."""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.stats import Sample
from tripwire.wording import for_framework


@register
class ClassImbalance(Rule):
    """Fire when, after ``min_samples`` labels, the largest class count is over ``threshold`` x the smallest.

    ``label_count`` gives, per class, the labels seen since the previous sample; the rule sums
    them over the run. Once the total reaches ``min_samples``:

        ratio = max_c count_c / min_c count_c   (over the classes seen so far)

    ``ratio > threshold`` fires (subject None); falling back to ``ratio <= threshold`` clears.
    A class reported with count 0 makes the ratio infinite; one never reported is unknown and
    left out. Same defaults as
    SageMaker's ClassImbalance.

    Args:
        threshold: largest / smallest class count above which the data counts as imbalanced.
            Defaults to 10.
        min_samples: labels to see before judging (formerly ``samples``). Defaults to 500.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = ClassImbalance("class_imbalance")
        >>> [v.fired for v in rule.check(Sample(10, stats={"label_count": {"0": 990.0, "1": 10.0}}))]
        [True]
    """

    kind = "class_imbalance"
    summary = "largest / smallest training class count > threshold after `min_samples` labels"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold", "upper", "log"),)

    class Params(RuleParams):
        """Parameters of `class_imbalance`."""

        renamed: ClassVar[dict[str, str]] = {"samples": "min_samples"}
        threshold: float = Field(10.0, gt=1, description="largest / smallest class count above which the "
                                                         "labels count as imbalanced")
        min_samples: int = Field(500, ge=1, description="labels to see before judging")

    def initial_state(self) -> dict[str, Any]:
        return {"counts": {}}

    def needs(self) -> list[Need]:
        return [Need("label_count")]

    def check(self, sample: Sample) -> list[Verdict]:
        series = sample.series("label_count")
        if series is None:
            return []
        counts: dict[str, float] = self.state["counts"]
        for cls, n in series.items():
            if cls is not None and math.isfinite(n) and n >= 0:
                counts[str(cls)] = counts.get(str(cls), 0.0) + float(n)
        total = sum(counts.values())
        if total < self.params.min_samples or len(counts) < 2:
            return []
        major = max(counts, key=counts.__getitem__)
        minor = min(counts, key=counts.__getitem__)
        ratio = counts[major] / counts[minor] if counts[minor] else math.inf
        if ratio <= self.params.threshold:
            return [self.clear(None)]
        return [self.fire(
            None, value=ratio, threshold=self.params.threshold,
            message=f"class {major} has {counts[major]:.0f} training labels and class {minor} only "
                    f"{counts[minor]:.0f} (ratio {ratio:.3g} > {self.params.threshold:g} after {total:.0f} labels): "
                    f"the model can score well by ignoring class {minor}",
            suggestion=for_framework(
                self.framework,
                "resample (torch WeightedRandomSampler, class-balanced batches), weight the loss "
                "(CrossEntropyLoss(weight=...), Keras class_weight, XGBoost scale_pos_weight / "
                "sample_weight), and track per-class recall or F1 rather than accuracy",
                torch="resample (WeightedRandomSampler, class-balanced batches), weight the loss "
                      "(CrossEntropyLoss(weight=...)), and track per-class recall or F1 rather than accuracy",
                keras="weight the classes (fit(class_weight=...) or sample_weight), resample to class-balanced "
                      "batches, and track per-class recall or F1 rather than accuracy",
                xgboost="weight the rare class (scale_pos_weight = negatives / positives for binary, else a "
                        "per-class sample_weight), and evaluate with aucpr or per-class recall / F1 rather than "
                        "error or accuracy"),
            counts=dict(counts), majority=major, minority=minor, total=total)]
