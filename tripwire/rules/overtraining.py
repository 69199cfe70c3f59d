"""`overtraining`: the validation loss stopped improving while the training loss keeps falling."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._loss_history import (
    NOISE_WINDOW,
    add_train,
    finite_scalar,
    level,
    new_train_since_val,
    noise,
    relative_drop,
    train_reference,
)
from tripwire.rules._streak import advance, end
from tripwire.rules._validation_streak import EPOCHS_SINCE_VAL, in_a_row, validation_weight
from tripwire.stats import Sample
from tripwire.wording import for_framework


@register
class Overtraining(Rule):
    """Fire when ``val_loss`` has not improved for ``patience`` validations while the training loss still falls.

    Improvement is relative, early-stopping style: a validation is a new best when

        val < best * (1 - min_delta)  (best = lowest val_loss so far, taken as |best| when negative)

    At each validation the training reference is the mean of the ``loss`` samples since the
    previous one. With ``k`` the epochs of validations since the best (each validation counts for
    the fraction of an epoch trained since the previous one, at most 1: ``epochs_since_val``, see
    :mod:`tripwire.rules._validation_streak`; with one validation per epoch or fewer ``k`` counts
    validations) and ``train_best`` the reference at the best, the rule fires when

        k >= patience  and  (train_best - train) / |train_best| >= min_delta

    i.e. the model keeps fitting the training set but no longer generalizes better. A new best
    clears; so does a training loss that stopped improving too (that is a plateau, see
    ``loss_not_decreasing``).

    A small validation set makes ``val_loss`` noisy, and a lucky low value becomes a best that
    later validations cannot beat. So the latest value must also sit above the best by more
    than ``z`` times the validation noise, estimated from the last 20 values with their trend
    removed (the median absolute second difference / 0.6745 / sqrt(6): a steady rise or fall
    is not noise; the bottom of a U-shaped curve is, so it needs a few values); with fewer than
    8 values, or none measurable, this test is off. And each validation is judged by its
    level, the median of the last 3 values (of 1-2 at first), so a single lucky low is no best;
    but a validation whose own value beats the best never fires either (the level lags a real
    turn: MobileNetV2 left its plateau with val_loss 1.41 -> 1.15 in one validation). Measured: a 4-8-3 MLP on a
    135/15 iris split has val_loss jumping by ~30% between epochs while it still improves.

    Args:
        patience: epochs of validations without a new best before firing (a validation counts for
            the epochs trained since the previous one, at most 1). Defaults to 5.
        min_delta: relative improvement that counts, for the validation and the training loss alike
            (formerly ``delta``). Defaults to 0.01 (1%).
        z: validation-noise standard deviations the latest val_loss must sit above the best.
            Defaults to 2.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = Overtraining("overtraining", Overtraining.Params(patience=2))
        >>> out = []
        >>> for step, train, val in [(100, 1.0, 0.9), (200, 0.8, 0.95), (300, 0.6, 1.0)]:
        ...     _ = rule.check(Sample(step, stats={"loss": {None: train}}))
        ...     out += [v.fired for v in rule.check(Sample(step, stats={"val_loss": {None: val}}))]
        >>> out
        [False, False, True]
    """

    kind = "overtraining"
    summary = "no val_loss improvement >= min_delta for patience validations while the training loss still falls"
    rearm_after = 1  # patience already spaces its findings: epochs of validations over the limit
    limits: ClassVar[tuple[Limit, ...]] = (Limit("patience", "upper", "int"),)

    class Params(RuleParams):
        """Parameters of `overtraining`."""

        renamed: ClassVar[dict[str, str]] = {"delta": "min_delta"}
        patience: int = Field(5, ge=1, description="validations without a new best val_loss before firing, "
                                                   "counted in epochs: a validation counts for the epochs trained "
                                                   "since the previous one, at most 1 (0.5 each when validating "
                                                   "twice per epoch)")
        min_delta: float = Field(0.01, ge=0, description="relative improvement that counts, for val_loss and the "
                                                         "training loss alike")
        z: float = Field(2.0, ge=0, description="validation-noise standard deviations (from the spread of recent "
                                                "val_loss values) the latest val_loss must sit above the best")

    def initial_state(self) -> dict[str, Any]:
        return {"train": new_train_since_val(), "best": None, "train_at_best": None, "best_step": None, "vals": []}

    def needs(self) -> list[Need]:
        return [Need("loss"), Need("val_loss"), EPOCHS_SINCE_VAL]

    def check(self, sample: Sample) -> list[Verdict]:
        st, p, at = self.state, self.params, self.step_word
        loss = finite_scalar(sample, "loss")
        if loss is not None:
            add_train(st["train"], loss)
        val = finite_scalar(sample, "val_loss")
        if val is None:
            return []
        train = train_reference(st["train"])
        vals = st.setdefault("vals", [])
        vals.append(val)
        del vals[:-NOISE_WINDOW]
        sigma = noise(vals)
        latest, val = val, level(vals)
        if st["best"] is None or val < st["best"] - p.min_delta * abs(st["best"]):
            st.update(best=val, train_at_best=train, best_step=sample.step)
            end(st, "since")
            return [self.clear(None)]
        streak = advance(st, "since", True, sample.step, weight=validation_weight(sample))  # since the best
        if st["train_at_best"] is None:  # the best came before any training loss (a sanity-check run)
            st["train_at_best"] = train
        if train is None:
            return []
        if not streak.reached(p.patience):
            return [self.clear(None)]
        train_drop = relative_drop(st["train_at_best"], train)
        just_improved = latest < st["best"] - p.min_delta * abs(st["best"])
        if train_drop < p.min_delta or (sigma > 0 and val <= st["best"] + p.z * sigma) or just_improved:
            return [self.clear(None)]
        streak_text = in_a_row(streak.count, streak.length, self.framework)
        return [self.fire(
            None, value=streak.length, threshold=p.patience,
            message=f"val_loss has not improved by {p.min_delta:.0%} for {streak_text} (best "
                    f"{st['best']:.4g} at {at} {st['best_step']}, now {latest:.4g} at {at} {sample.step}, level "
                    f"{val:.4g} as the median of the last 3) while the training loss fell {train_drop:.0%} "
                    f"({st['train_at_best']:.4g} -> {train:.4g})",
            suggestion=for_framework(
                self.framework,
                "further training only fits the training set: stop early and keep the best-val_loss "
                "checkpoint (EarlyStopping / ModelCheckpoint on val_loss), decay the learning rate, or add "
                "regularization (weight decay, dropout, augmentation)",
                xgboost="further rounds only fit the training set: stop at the best round (early_stopping_rounds "
                        "on the validation set keeps best_iteration), or lower eta with more rounds, and "
                        "regularize the trees (lower max_depth, raise min_child_weight, subsample below 1)"),
            best_val_loss=st["best"], best_step=st["best_step"], val_loss=latest, val_level=val,
            val_noise=sigma,
            train_loss_at_best=st["train_at_best"], train_loss=train)]

