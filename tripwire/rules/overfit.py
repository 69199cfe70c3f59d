"""`overfit`: the validation loss is far above the training loss."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._loss_history import (
    NOISE_WINDOW,
    add_train,
    finite_scalar,
    new_train_since_val,
    noise,
    train_reference,
)
from tripwire.rules._streak import advance
from tripwire.rules._validation_streak import EPOCHS_SINCE_VAL, in_a_row, validation_weight
from tripwire.stats import Sample
from tripwire.wording import for_framework

_EPS = 1e-12


@register
class Overfit(Rule):
    """Fire when the validation loss exceeds the training loss by ``ratio`` for ``patience`` validations.

    At each validation (a sample carrying ``val_loss``) the training reference ``train`` is the
    mean of the ``loss`` samples since the previous validation (a ``loss`` in the same sample
    counts, as with XGBoost where both come per round):

        r = (val - train) / max(|train|, floor * initial)

where ``initial`` is the first training loss seen. The floor keeps a model that has all but
reached zero training loss on easy data (train 0.009, val 0.05) from counting as a 5x gap:
relative to the scale the loss started from, that gap is small. The finding's ``value`` is
``r``; its message says which denominator was used (``evidence["floored"]``), and the report
plots ``r`` with the same floor.

    ``patience`` epochs of validations in a row with ``r > ratio`` *and* no new best validation
    loss fire; one with ``r <= ratio`` or a new best clears. Each validation counts for the
    fraction of an epoch trained since the previous one, at most 1 (``epochs_since_val``; see
    :mod:`tripwire.rules._validation_streak`): with one validation per epoch or fewer, ``patience``
    counts validations; validating twice per epoch takes twice as many.

    A gap alone is not overfitting: boosted trees and well-regularized networks reach training
    losses far below validation while the validation loss still improves, or holds steady at its
    best while the training loss heads for 0 (a boosted model on breast cancer, eta 0.1: train
    0.027 -> 0.013 over 50 rounds after the best, val 0.152 -> 0.155), and that is healthy
    training that early stopping ends. A validation counts as overfitting only when, besides the
    gap, either

    - the gap **grew** since the best validation: ``r - r_best > ratio`` (``r_best`` the ratio at
      the best val_loss), the textbook curve of a validation loss turning up while the training
      loss falls; or
    - the model **memorizes without generalizing**: less than ``transfer`` of the training loss's
      progress since its first value reached validation,
      ``(initial - val) < transfer * (initial - train)``, with ``initial`` the first training loss
      (signed here). 80 noisy rows fitted by deep trees are validated at chance from the first
      round: their gap is huge at once and never grows, and this arm sees them.
    SageMaker's Overfit used ratio 0.1 and patience 1, which fires on ordinary generalization
    gaps (and on dropout runs, where the training loss is the noisier one); 0.5 over 3
    validations is a gap that keeps growing.

    A small validation set makes ``val_loss`` jump between validations; a gap counts only when it
    also exceeds ``z`` times that noise (``val - train > ratio * denominator + z * noise``, the
    noise estimated from the last 20 values around their trend, once there are 8; see
    :func:`tripwire.rules._loss_history.noise`). Measured: a 4-8-3 MLP validated on 15 iris rows
    settles at val_loss ~0.1-0.15 with jumps of 30-100% between epochs, train 0.055.

    Args:
        ratio: relative gap above which a validation counts. Defaults to 0.5.
        patience: epochs of validations in a row over ``ratio`` before firing (a validation counts
            for the epochs trained since the previous one, at most 1). Defaults to 3.
        floor: smallest denominator, as a share of the initial training loss. Defaults to 0.1.
        z: validation-noise standard deviations the gap must also exceed. Defaults to 2.
        transfer: share of the training loss's progress that must reach the validation loss for a
            large but stable gap to count as generalization. Defaults to 0.5.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = Overfit("overfit", Overfit.Params(patience=2))
        >>> out = []
        >>> for step, train, val in [(100, 1.0, 1.1), (200, 0.5, 1.2), (300, 0.3, 1.4)]:
        ...     _ = rule.check(Sample(step, stats={"loss": {None: train}}))
        ...     out += [v.fired for v in rule.check(Sample(step, stats={"val_loss": {None: val}}))]
        >>> out
        [False, False, True]
    """

    kind = "overfit"
    summary = "(val_loss - train loss) / train loss > ratio for patience validations"
    rearm_after = 1  # patience already spaces its findings: epochs of validations over the limit
    limits: ClassVar[tuple[Limit, ...]] = (Limit("ratio", "upper", "log"),)

    class Params(RuleParams):
        """Parameters of `overfit`."""

        ratio: float = Field(0.5, gt=0, description="relative gap (val - train) / train above which a "
                                                    "validation counts")
        patience: int = Field(3, ge=1, description="validations in a row over ratio before firing, counted in "
                                                   "epochs: a validation counts for the epochs trained since the "
                                                   "previous one, at most 1 (0.5 each when validating twice per "
                                                   "epoch)")
        floor: float = Field(0.1, ge=0, description="smallest denominator of the ratio, as a share of the "
                                                    "initial training loss")
        z: float = Field(2.0, ge=0, description="validation-noise standard deviations (from the spread of recent "
                                                "val_loss values) the gap must also exceed")
        transfer: float = Field(0.5, ge=0, le=1, description="share of the training loss's progress since its "
                                                              "first value that must show in val_loss for a gap that "
                                                              "stopped growing to count as healthy")

    def initial_state(self) -> dict[str, Any]:
        return {"train": new_train_since_val(), "initial": None, "first_loss": None, "best_val": None, "r_best": None}

    def needs(self) -> list[Need]:
        return [Need("loss"), Need("val_loss"), EPOCHS_SINCE_VAL]

    def check(self, sample: Sample) -> list[Verdict]:
        loss = finite_scalar(sample, "loss")
        if loss is not None:
            add_train(self.state["train"], loss)
            if self.state.get("initial") is None:
                self.state["initial"] = abs(loss)
                self.state["first_loss"] = loss
        val = finite_scalar(sample, "val_loss")
        if val is None:
            return []
        train = train_reference(self.state["train"])
        if train is None:
            return []
        p = self.params
        vals = self.state.setdefault("vals", [])
        vals.append(val)
        del vals[:-NOISE_WINDOW]
        initial = self.state.get("initial") or 0.0
        denominator = max(abs(train), p.floor * initial, _EPS)
        r = (val - train) / denominator
        within_noise = val - train <= p.ratio * denominator + p.z * noise(vals)
        best = self.state.get("best_val")
        improving = best is None or val < best
        if improving:
            self.state["best_val"], self.state["r_best"] = val, r
        r_best = self.state.get("r_best")
        grew = r_best is None or r - r_best > p.ratio
        first = self.state.get("first_loss")
        first = train if first is None else first
        memorizes = first - val < p.transfer * (first - train)
        over = r > p.ratio and not improving and not within_noise and (grew or memorizes)
        streak = advance(self.state, "over", over, sample.step, weight=validation_weight(sample))
        if not streak.reached(p.patience):
            return [self.clear(None)]
        floored = denominator > abs(train)
        unit = (f"{denominator:.4g}, the floor that replaces a training loss below {p.floor:g} x the initial "
                f"{initial:.4g}" if floored else "the training loss")
        return [self.fire(
            None, value=r, threshold=p.ratio,
            message=f"validation loss {val:.4g} is above the training loss {train:.4g} by {r:.4g} x {unit} "
                    f"(limit {p.ratio:g}) at {self.step_word} {sample.step}, for "
                    f"{in_a_row(streak.count, streak.length, self.framework)}; "
                    + (f"the gap grew since the best validation{_at_best(r_best)}" if grew else
                       f"the validation loss kept less than {p.transfer:g} of the training loss's progress from "
                       f"{first:.4g}"),
            suggestion=for_framework(
                self.framework,
                "the model memorizes the training set: add regularization (weight decay, dropout, data "
                "augmentation), use more training data or a smaller model, and keep the checkpoint with "
                "the best val_loss (early stopping)",
                xgboost="the trees memorize the training set: lower max_depth (3..8 is typical), raise "
                        "min_child_weight or gamma, set subsample / colsample_bytree below 1, lower eta with more "
                        "rounds, and stop at the best round (early_stopping_rounds on the validation set)"),
            val_loss=val, train_loss=train, denominator=denominator, floored=floored, validations_over=streak.count,
            epochs_over=streak.length, ratio_at_best=r_best, gap_grew=grew, memorizes=memorizes)]


def _at_best(r_best: float | None) -> str:
    """The ratio at the best validation, for the message (none in a state saved before it was kept)."""
    return "" if r_best is None else f" ({r_best:.4g})"
