"""`underfit`: the training loss plateaued close to where it started."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._loss_history import add_to_window, finite_scalar, new_window, relative_drop
from tripwire.rules._percent import percent
from tripwire.rules._streak import advance
from tripwire.stats import Sample
from tripwire.wording import for_framework


@register
class Underfit(Rule):
    """Fire when, after ``min_steps``, the training loss has plateaued above ``ratio`` x its initial value.

    The initial loss ``L0`` is the mean of the first ``initial_samples`` loss samples. Steps are
    cut into consecutive windows of ``window`` steps; at the end of each window with mean ``m_k``:

        plateau = (m_{k-1} - m_k) / |m_{k-1}| < min_delta
        high    = ratio * L0 < m_k <= L0 / ratio

    ``patience`` windows in a row that are both plateaued and high, ending at or after
    ``min_steps``, fire; any other window clears. A loss that never left its start (every
    window mean so far at least ``near_start`` x ``L0``: the model has learned nothing) is
    judged from ``early_steps`` on instead, a few hundred steps rather than ``min_steps``. A healthy
    run's loss falls well below its start; one that stalls near it is too small a model, too low a
    learning rate, or features that carry no signal. Only the training loss is used. A loss that
    settles far *above* its start (past ``L0 / ratio``) is not underfitting: something pushes it up,
    an adversary (a GAN's generator loss rises as its discriminator learns) or divergence
    (``nonfinite``, ``exploding_gradient`` and ``loss_not_decreasing`` watch that), and more
    capacity or a higher learning rate would be the wrong advice.

    Args:
        min_steps: no verdict for windows that end before this step. Defaults to 1000.
        window: window length in optimizer steps (XGBoost: rounds). Defaults to 200.
        min_delta: smallest relative drop between windows that counts as progress. Defaults to 0.01.
        ratio: the loss counts as high above ``ratio * L0``. Defaults to 0.9.
        patience: consecutive plateaued, high windows before firing. Defaults to 2.
        initial_samples: loss samples averaged into ``L0``. Defaults to 3.
        early_steps: first step of a verdict for a loss that never left its start. Defaults to 400.
        near_start: share of ``L0`` every window mean stays above for the early verdict. Defaults
            to 0.97.

    Example:
        >>> from tripwire.stats import Sample
        >>> params = Underfit.Params(min_steps=30, window=10, patience=1)
        >>> rule = Underfit("underfit", params)
        >>> flat = [v.fired for s in range(1, 41) for v in rule.check(Sample(s, stats={"loss": {None: 2.3}}))]
        >>> flat
        [True, True]
    """

    kind = "underfit"
    summary = "after min_steps the training loss plateaued above ratio x its initial value"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("ratio", "upper", "log"), Limit("min_delta", "lower", "log"))

    class Params(RuleParams):
        """Parameters of `underfit`."""

        min_steps: int = Field(1000, ge=0, description="no verdict for windows that end before this step")
        window: int = Field(200, ge=1, description="window length in optimizer steps (XGBoost: rounds)")
        min_delta: float = Field(0.01, ge=0, description="smallest relative drop between windows that counts "
                                                        "as progress")
        ratio: float = Field(0.9, gt=0, description="the loss counts as high above ratio x its initial value")
        patience: int = Field(2, ge=1, description="consecutive plateaued, high windows before firing")
        initial_samples: int = Field(3, ge=1, description="loss samples averaged into the initial value")
        early_steps: int = Field(400, ge=0, description="first step of a verdict for a loss that never left its "
                                                        "start (every window mean >= near_start x the initial)")
        near_start: float = Field(0.97, gt=0, description="share of the initial loss every window mean stays above "
                                                          "for the early verdict")

    def initial_state(self) -> dict[str, Any]:
        return {"window": new_window(0), "first": [], "lowest": None}

    def needs(self) -> list[Need]:
        return [Need("loss")]

    def check(self, sample: Sample) -> list[Verdict]:
        loss = finite_scalar(sample, "loss")
        if loss is None:
            return []
        p, st = self.params, self.state
        if len(st["first"]) < p.initial_samples:
            st["first"].append(loss)
        closed = add_to_window(st["window"], sample.step, loss, p.window)
        if closed is None or closed[0] is None:
            return []
        before, after = closed
        initial = sum(st["first"]) / len(st["first"])
        lowest = st["lowest"] = min(before, after, st.get("lowest") or after)
        first_verdict = min(p.early_steps, p.min_steps) if lowest >= p.near_start * initial else p.min_steps
        drop = relative_drop(before, after)
        risen = initial > 0 and after > initial / p.ratio  # pushed up: an adversary or divergence, not underfit
        plateau_high = drop < p.min_delta and after > p.ratio * initial and not risen
        streak = advance(st, "misses", plateau_high, sample.step)
        if sample.step < first_verdict:
            return []
        if not streak.reached(p.patience):
            return [self.clear(None)]
        share = after / initial if initial else float("inf")
        return [self.fire(
            None, value=share, threshold=p.ratio,
            message=f"training loss plateaued at {after:.4g} by {self.step_word} {sample.step}, still "
                    f"{percent(share, p.ratio)} of its initial {initial:.4g} (limit {percent(p.ratio)}); under a "
                    f"{p.min_delta:.1%} drop per {p.window} {self.step_word}s for {streak.count} windows",
            suggestion=for_framework(
                self.framework,
                "the model is not learning: raise the learning rate, give the model more capacity "
                "(width, depth), lower weight decay / dropout, check that inputs are normalized and that "
                "labels match the inputs (shuffled or misaligned labels look like this)",
                xgboost="the trees are not learning: raise eta or max_depth, lower min_child_weight, gamma and "
                        "reg_lambda / reg_alpha, check that the objective fits the task and that the labels match "
                        "the features (shuffled or misaligned labels look like this)"),
            initial_loss=initial, window_mean=after, previous_mean=before, relative_drop=drop)]
