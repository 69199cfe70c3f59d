"""`low_feature_importance`: most features are unused, or a few take all the importance."""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._percent import percent
from tripwire.stats import Sample


@register
class LowFeatureImportance(Rule):
    """Fire on two conditions over the normalized gain importance ``I_f`` (sums to 1; features
    never split on have 0), from round ``min_rounds`` on. With ``F`` features:

    - ``dominant``: the ``n`` largest ``I_f`` sum to more than ``max_share``, when ``F > 2n``
      (with few features a handful always holds everything). One feature with ~all the gain is
      the signature of a leaked label or an ID column.
    - ``useless`` (severity info): ``count(I_f < threshold) / F > max_useless_share``, when
      ``F >= min_features``. Most columns do nothing: drop them, or check the feature pipeline.

    ``dominant`` comes first, so when both fire in one round the merged finding keeps its severity.

    **Held-out importance.** Gain is measured on the training rows, where trees split on noise for
    real gain: 40 pure-noise columns joined to diabetes' 10 (331 training rows) kept 0.3-2.5% of
    the gain each, as the weakest real features do, and the useless share stayed at 0. When the
    run has held-out rows (``XGBoostTripwire(eval_data=(X_val, y_val))``), a feature also counts
    as useless when shuffling it (with the features correlated with it) does not raise the
    held-out loss by more than ``heldout_z`` standard errors (``heldout_importance``, see
    :mod:`tripwire.callbacks.xgboost.heldout`), once the model amounts to ``min_progress``
    full-strength trees. The test is one-sided and the rule judges a share, so ``heldout_z``
    balances two errors: a pure-noise column passes as useful with probability ~16% at 1 standard
    error (2% at 2), and a weak real feature measured on a hundred held-out rows rarely reaches 2.
    Highest share per run from ``min_progress`` on (111-1250 held-out rows; limit 0.5), at
    ``heldout_z`` 1 / 1.5 / 2: diabetes with 40 noise columns 0.72 / 0.82 / 0.88; healthy:
    make_regression (8 of its 20 columns uninformative) 0.20 / 0.35 / 0.45, diabetes 0.20 / 0.30 /
    0.40, the correlated sklearn set 0.27, digits 0.20 (constant border pixels), wine 0.00 / 0.08 /
    0.15, breast cancer 0.07 / 0.07 / 0.10 (0.93 at 2 if correlated features were shuffled one by
    one). At 1 the margins on both sides are alike (0.23 and 0.22).

    A feature is only called useless once it has had a chance: the ``useless`` test waits until
    the model has made ``min_chances`` splits, on average, at which each feature was a candidate
    (``feature_chances``: splits so far x the ``colsample_by*`` fractions). Early rounds of small
    trees with column subsampling have not looked at most columns: on breast_cancer with
    ``max_depth=2, eta=0.1, colsample_bytree=0.5`` the share under 1e-3 was 0.57 at round 10
    (15 chances) and 0.33 at round 40 (60 chances); with 30 pure-noise columns added it stayed
    at 0.68 (round 40) and 0.52 (round 200), and 0.58 with default parameters from round 10
    (104 chances). Redundant features (correlated with a stronger one) get their splits when
    subsampling hides their partner; noise features do not.

    Measured with XGBoost defaults (total gain, rounds 10..200): the top 3 held 0.65 on
    breast_cancer, 0.69 on diabetes, 0.81 on wine, 0.26 on digits, 0.80-0.85 on a synthetic set
    with 5 of 50 informative features, and 1.00 with a leaked label column. SageMaker's 0.8
    fires on wine, so ``max_share`` defaults to 0.9. The share of features under 1e-3 was
    0.27-0.37 on breast_cancer, 0.30 on digits (constant border pixels), 0.52-0.66 with 20 of
    200 informative, 0.95 with a leaked label.

    The dominance test waits until the model amounts to ``min_progress`` full-strength trees
    (``boosting_progress``: rounds x eta). The first rounds split on the strongest features, and
    with a small eta the first rounds last: with ``eta=0.03, max_depth=3`` the top 3 of diabetes'
    10 features held 0.93 after 11 rounds, 0.88 after 41 and 0.80 after 120; on breast_cancer the
    top one held 0.79 after 11 rounds and 0.43 after 120. A leaked label keeps its share (0.94 on
    breast_cancer from round 10 to 300 with ``eta=0.05``).

    Args:
        n: how many top features the dominance test adds up. Defaults to 3.
        max_share: largest acceptable importance of the top ``n``. Defaults to 0.9.
        threshold: importance below which a feature counts as useless. Defaults to 1e-3.
        max_useless_share: largest acceptable share of useless features. Defaults to 0.5.
        min_features: fewest features for the useless test. Defaults to 10.
        min_rounds: first boosting round evaluated. Defaults to 10.
        min_progress: rounds x eta before the dominance test and before the held-out importance
            counts. Defaults to 3.0 (10 rounds at XGBoost's default eta 0.3).
        min_chances: splits at which each feature was a candidate, on average, before the useless
            test. Defaults to 50.
        heldout_z: held-out importance, in standard errors above zero, at or below which a feature
            counts as useless (runs with held-out rows only). Defaults to 1.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = LowFeatureImportance("low_feature_importance", LowFeatureImportance.Params(min_rounds=1))
        >>> importance = {f"f{i}": 0.0 for i in range(20)} | {"f3": 0.96, "f7": 0.04}
        >>> [(v.subject, v.fired) for v in rule.check(Sample(1, stats={"feature_importance": importance}))]
        [('dominant', True), ('useless', True)]
    """

    kind = "low_feature_importance"
    summary = "most features have ~0 importance, or the top n features hold > max_share of it"
    limits: ClassVar[tuple[Limit, ...]] = (
        Limit("max_share", "upper", "linear"),
        Limit("threshold", "lower", "log"),
        Limit("max_useless_share", "upper", "linear"),
    )

    class Params(RuleParams):
        """Parameters of `low_feature_importance`."""

        n: int = Field(3, ge=1, description="how many top features the dominance test adds up")
        max_share: float = Field(0.9, gt=0, lt=1, description="largest acceptable importance share of the top n "
                                                               "features")
        threshold: float = Field(1e-3, ge=0, lt=1, description="normalized importance below which a feature is "
                                                               "useless")
        max_useless_share: float = Field(0.5, ge=0, lt=1, description="largest acceptable share of useless features")
        min_features: int = Field(10, ge=2, description="fewest features for the useless test")
        min_rounds: int = Field(10, ge=0, description="first boosting round (sample step) evaluated")
        min_progress: float = Field(3.0, ge=0, description="rounds x eta before the dominance test (the first "
                                                            "rounds split on the strongest features) and the "
                                                            "held-out test")
        min_chances: float = Field(50.0, ge=0, description="splits at which each feature was a candidate, on "
                                                           "average, before the useless test")
        heldout_z: float = Field(1.0, ge=0, description="held-out permutation importance, in standard errors "
                                                        "above zero, at or below which a feature counts as "
                                                        "useless (when the run has held-out rows)")

    def needs(self) -> list[Need]:
        return [Need("feature_importance"), Need("feature_chances"), Need("boosting_progress"),
                Need("heldout_importance")]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        values = sample.series("feature_importance")
        if not values or sample.step < p.min_rounds:
            return []
        importance = {str(f): float(v) for f, v in values.items() if math.isfinite(v)}
        total = sum(importance.values())
        if total <= 0:
            return []
        importance = {f: v / total for f, v in importance.items()}  # tolerate unnormalized input
        ranked = sorted(importance.items(), key=lambda kv: -kv[1])
        count = len(ranked)
        out = []
        progress = sample.scalar("boosting_progress")  # absent (no eta, an older record): no wait
        if count > 2 * p.n and (progress is None or progress >= p.min_progress):
            top = ranked[:p.n]
            held = sum(v for _, v in top)
            if held > p.max_share:
                names = ", ".join(f"{f} ({v:.0%})" for f, v in top)
                out.append(self.fire(
                    "dominant", value=held, threshold=p.max_share,
                    message=f"the top {p.n} of {count} features hold {percent(held, p.max_share)} of the "
                            f"importance at round {sample.step} (limit {percent(p.max_share)}): {names}",
                    suggestion=f"check {top[0][0]} for target leakage (a column computed from the label, an ID or "
                               "timestamp that encodes it); if legitimate, the other features add little",
                    top={f: v for f, v in top}, features=count))
            else:
                out.append(self.clear("dominant"))
        chances = sample.scalar("feature_chances")  # absent (an older record): no wait
        if count >= p.min_features and (chances is None or chances >= p.min_chances):
            heldout = sample.series("heldout_importance") or {}
            if progress is not None and progress < p.min_progress:
                heldout = {}  # a model of a few small-eta rounds has not yet shown what its features do
            unproven = {str(f) for f, z in heldout.items() if math.isfinite(z) and z <= p.heldout_z}
            unused = [f for f, v in ranked if v < p.threshold]
            useless = [f for f, v in ranked if v < p.threshold or f in unproven]
            share = len(useless) / count
            if share > p.max_useless_share:
                held = (f" or no effect on the held-out loss (<= {p.heldout_z:g} standard errors; "
                        f"{len(useless) - len(unused)} of them)") if len(useless) > len(unused) else ""
                out.append(self.fire(
                    "useless", value=share, threshold=p.max_useless_share, severity="info",
                    message=f"{len(useless)} of {count} features ({percent(share, p.max_useless_share)}) have "
                            f"importance < {p.threshold:g}{held} at round {sample.step} (limit "
                            f"{percent(p.max_useless_share)}), e.g. {', '.join(sorted(useless)[:5])}",
                    suggestion="drop features the model does not use, or check the feature pipeline (constant or "
                               "all-missing columns, a broken join or encoding)",
                    useless=sorted(useless)[:50], features=count, no_gain=len(unused),
                    heldout_checked=bool(heldout)))
            else:
                out.append(self.clear("useless"))
        return out
