"""`loss_not_decreasing`: the training loss stopped falling (or rises)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._loss_history import add_to_window, finite_scalar, new_window, relative_drop
from tripwire.rules._streak import advance
from tripwire.stats import Sample
from tripwire.wording import for_framework


@register
class LossNotDecreasing(Rule):
    """Fire when the mean training loss did not fall by ``min_delta`` for ``patience`` windows in a row.

    Steps after ``warmup`` are cut into consecutive windows of ``window`` steps. When a window is
    complete, its mean loss ``m_k`` is compared with the previous window's ``m_{k-1}``:

        drop = (m_{k-1} - m_k) / |m_{k-1}|;  a miss when drop < min_delta

    ``patience`` misses in a row fire; a window with ``drop >= min_delta`` clears. A rising loss
    is a miss too. Means over whole windows keep a noisy loss that trends down silent. A run that
    has converged also stops improving by ``min_delta`` per window and is reported: that is the
    "training has stalled" signal, worth an alert rather than a stop.

    Args:
        window: window length in optimizer steps (XGBoost: rounds). Defaults to 200.
        min_delta: smallest relative drop between consecutive windows that counts as progress.
            Defaults to 0.01 (1%).
        patience: consecutive windows without progress before firing. Defaults to 3.
        warmup: steps ignored at the start (LR warm-up can raise the loss). Defaults to 100.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = LossNotDecreasing("loss_not_decreasing", LossNotDecreasing.Params(window=10, patience=2, warmup=0))
        >>> losses = {step: max(1.0, 3.0 - 0.1 * step) for step in range(1, 61)}  # falls, then flat from step 20
        >>> [(s, v.fired) for s, loss in losses.items() for v in rule.check(Sample(s, stats={"loss": {None: loss}}))]
        [(20, False), (30, False), (40, False), (50, True), (60, True)]
    """

    kind = "loss_not_decreasing"
    summary = "the mean training loss did not fall by min_delta for patience windows of steps"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("min_delta", "lower", "log"),)
    # Opt-in: a healthy run that has converged also stops improving; `underfit` (in the default
    # set) covers the loss that never fell in the first place.
    in_default_set: ClassVar[bool] = False

    class Params(RuleParams):
        """Parameters of `loss_not_decreasing`."""

        window: int = Field(200, ge=1, description="window length in optimizer steps (XGBoost: rounds)")
        min_delta: float = Field(0.01, ge=0, description="smallest relative drop of the window mean that "
                                                        "counts as progress")
        patience: int = Field(3, ge=1, description="consecutive windows without progress before firing")
        warmup: int = Field(100, ge=0, description="steps ignored at the start")

    def initial_state(self) -> dict[str, Any]:
        return {"window": new_window(self.params.warmup)}

    def needs(self) -> list[Need]:
        return [Need("loss")]

    def check(self, sample: Sample) -> list[Verdict]:
        loss = finite_scalar(sample, "loss")
        if loss is None:
            return []
        p = self.params
        closed = add_to_window(self.state["window"], sample.step, loss, p.window)
        if closed is None or closed[0] is None:
            return []
        before, after = closed
        drop = relative_drop(before, after)
        streak = advance(self.state, "misses", drop < p.min_delta, sample.step)
        if not streak.reached(p.patience):
            return [self.clear(None)]
        trend = "rose" if after > before else "stayed flat"
        return [self.fire(
            None, value=drop, threshold=p.min_delta,
            message=f"training loss {trend}: mean {after:.4g} over the {p.window} {self.step_word}s to "
                    f"{self.step_word} {sample.step} vs {before:.4g} before ({-drop:+.1%}); under a "
                    f"{p.min_delta:.1%} drop for {streak.count} windows in a row",
            suggestion=for_framework(
                self.framework,
                "if the loss is flat from the start, raise the learning rate (try 1e-4..1e-3 for Adam) and "
                "check that gradients reach the parameters (requires_grad, optimizer param groups, "
                "zero_grad placement); if it rises, lower the learning rate; if the run has converged, "
                "stop early or decay the learning rate",
                xgboost="if the loss is flat from the start, raise eta or max_depth and check the objective and "
                        "the labels; if it rises, lower eta; if the model has converged, stop at the best round "
                        "(early_stopping_rounds on a validation set)"),
            window_mean=after, previous_mean=before, relative_drop=drop, misses=streak.count)]
