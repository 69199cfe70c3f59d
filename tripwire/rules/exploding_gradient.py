"""`exploding_gradient`: the global gradient norm is huge, or jumps far above its recent level."""

from __future__ import annotations

import math
import statistics
from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.rules._loss_history import converged, finite_scalar
from tripwire.rules._streak import advance
from tripwire.stats import Sample


@register
class ExplodingGradient(Rule):
    """Fire when the global gradient norm ``G`` (L2 over all gradients, before clipping) is

        G > max_norm        or        G > factor * median(G of the previous `history` samples)

    for ``patience`` samples in a row. The relative test starts after ``warmup`` samples. Values
    that count are kept out of the history, so a run that stays exploded keeps firing against
    the healthy level instead of teaching the median that the explosion is normal. NaN/Inf
    norms are left to ``nonfinite`` (and fp16 loss-scale skips produce Inf legitimately).

    Measured on small runs with mean-reduced losses (MLP, CNN, transformer; Adam and SGD; batch
    2..32): G stayed below 4 and never exceeded 7.3x the median of the previous 20 samples while
    the model was still learning. A loss summed over a large batch scales G with the batch; 1e4
    leaves room for that while an explosion passes it within a few steps.

    A jump while the training loss improves is learning, not explosion: when the sample's loss
    is below the median of the losses of the same previous samples, the relative test does not
    count it, and its norm joins the history (the median follows the model into its new regime).
    Measured: fine-tuning a small BERT with linear warm-up, G reached 14x its running median just
    as the model left its initial plateau and the loss began to fall. An explosion lifts the
    loss with the norm within a sample or two, and ``max_norm`` has no such exception.

    The relative test is off once the training loss is below ``converged_below`` of its first
    value: a model that fits its data has a tiny median gradient, and the one batch that still
    holds a hard example lifts G 10-30x above it (measured on healthy 3000-step MLP runs, Adam
    and SGD, at losses 0.05-0.5% of the first). ``max_norm`` and ``nonfinite`` still apply.

    Args:
        max_norm: absolute limit on the global gradient norm. Defaults to 1e4.
        factor: multiple of the running median that counts. Defaults to 10.
        warmup: samples before the relative test starts. Defaults to 5.
        history: samples in the running median. Defaults to 20.
        patience: samples in a row before firing. Defaults to 1.
        converged_below: share of the first training loss under which the relative test is off.
            Defaults to 0.01.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = ExplodingGradient("exploding_gradient")
        >>> norms = [1.0, 1.2, 0.9, 1.1, 1.0, 0.8, 45.0]
        >>> samples = [Sample(10 * i, stats={"grad_global_norm": {None: g}}) for i, g in enumerate(norms)]
        >>> [v.fired for s in samples for v in rule.check(s)]
        [False, False, False, False, False, False, True]
    """

    kind = "exploding_gradient"
    summary = "global grad norm > max_norm, or > factor x its running median"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("max_norm", "upper", "log"), Limit("factor", "upper", "log"))
    remediations: ClassVar[tuple[str, ...]] = ("reduce_lr", "rollback")

    class Params(RuleParams):
        """Parameters of `exploding_gradient`."""

        max_norm: float = Field(1e4, gt=0, description="absolute limit on the global gradient norm")
        factor: float = Field(10.0, gt=1, description="multiple of the running median of previous samples "
                                                      "that counts as a jump")
        warmup: int = Field(5, ge=1, description="samples in the history before the relative test starts")
        history: int = Field(20, ge=1, description="previous samples the running median covers")
        patience: int = Field(1, ge=1, description="samples in a row over a limit before firing")
        converged_below: float = Field(0.01, ge=0, le=1, description="the relative test is off while the training "
                                                                     "loss is below this share of its first value")

    def initial_state(self) -> dict[str, Any]:
        return {"history": [], "losses": [], "first_loss": None, "loss": None}

    def needs(self) -> list[Need]:
        return [Need("grad_global_norm"), Need("loss")]

    def check(self, sample: Sample) -> list[Verdict]:
        p, history = self.params, self.state["history"]
        is_converged = converged(self.state, sample, p.converged_below)
        norm = sample.scalar("grad_global_norm")
        if norm is None or not math.isfinite(norm):
            return []
        median = statistics.median(history) if len(history) >= p.warmup and not is_converged else None
        loss, losses = finite_scalar(sample, "loss"), self.state.setdefault("losses", [])
        learning = loss is not None and bool(losses) and loss < statistics.median(losses)
        if norm > p.max_norm:
            reason, limit = f"> max_norm {p.max_norm:g}", p.max_norm
        elif median is not None and median > 0 and norm > p.factor * median and not learning:
            reason, limit = f"{norm / median:.0f}x its running median {median:.3g} (limit {p.factor:g}x)", \
                p.factor * median
        else:
            reason, limit = None, None
            history.append(float(norm))
            del history[:-p.history]
            if loss is not None:
                losses.append(loss)
                del losses[:-p.history]
        streak = advance(self.state, "over", reason is not None, sample.step)
        if not streak.reached(p.patience):
            return [self.clear(None)]
        return [self.fire(
            None, value=norm, threshold=limit,
            message=f"exploding gradient at step {sample.step}: global gradient norm {norm:.3g} is {reason}",
            suggestion="lower the learning rate, clip gradients (gradient_clip_val=1.0 in Lightning, clipnorm=1.0 "
                       "in Keras), add warmup, check for a bad batch or unnormalized inputs/targets",
            grad_global_norm=norm, running_median=median, samples=streak.count)]
