"""`small_updates`: an optimizer step barely changes a parameter."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import LayerParams, finite_items, judge_layers, remember_ndims
from tripwire.rules._schedule import at_rest
from tripwire.rules._streak import Streak
from tripwire.stats import Sample


@register
class SmallUpdates(Rule):
    """Fire for a parameter whose relative update stays below ``threshold`` for ``patience``
    samples in a row.

        update_ratio = ||w_after - w_before|| / ||w_before||     (one optimizer step)

    Measured on small MLP/CNN/transformer runs (weights, steps 10..150): Adam/AdamW at LR
    1e-4..1e-3 gives 2e-5..2e-3, SGD with momentum at 1e-2..1e-1 gives 1e-4..2e-2, plain SGD at
    1e-3 gives 4e-6; Adam at LR 1e-9 gives at most 3e-8 and SGD at 1e-9 about 1e-9. A default of
    1e-6 sits between. Plain SGD at LR 1e-4 (about 4e-7) fires: at that pace a weight needs
    ~1e6 steps to change by its own size.

    Samples do not count once the training loss is below ``converged_below`` of its first value:
    a model that fits its data gets tiny gradients, and its updates shrink with them (measured:
    a converged transformer's embedding under Adam at 8e-7..1e-6; the last samples of healthy
    runs whose cosine schedule anneals the LR to 0, at 5e-7..9e-7). Nor do samples whose learning
    rate is below ``lr_decayed_below`` of the largest one of the run, or rose since the previous
    sample: a schedule annealing to 0 or warming up from ~0 shrinks the updates on purpose (a
    3000-step Adam run that plateaued at 47% of its first loss fired in its last 60 steps). A
    learning rate that is tiny from the start still counts.

    Biases are left out unless ``include_biases``: a bias followed by BatchNorm has no effect
    on the loss, gets ~0 gradient and so ~0 update under SGD, which is harmless.

    Args:
        threshold: update ratio below which a sample counts. Defaults to 1e-6.
        patience: samples in a row below ``threshold`` before firing. Defaults to 3.
        include_biases: also evaluate 1-D parameters (biases, normalization scales and shifts).
            Defaults to False.
        converged_below: share of the first training loss under which samples do not count.
            Defaults to 0.01.
        lr_decayed_below: share of the run's largest learning rate under which samples do not
            count. Defaults to 0.01.
        ignore: glob patterns of parameter names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = SmallUpdates("small_updates", SmallUpdates.Params(patience=2))
        >>> for step in (10, 20):
        ...     verdicts = rule.check(Sample(step, stats={"update_ratio": {"fc.weight": 3e-9, "out.weight": 2e-3}}))
        >>> [(v.subject, v.fired) for v in verdicts]
        [('fc.weight', True), ('out.weight', False)]
    """

    kind = "small_updates"
    summary = "||dw||/||w|| of a parameter stays below threshold (learning rate too low)"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold", "lower", "log"),)

    class Params(LayerParams):
        """Parameters of `small_updates`."""

        threshold: float = Field(1e-6, gt=0, description="update ratio ||w_after - w_before|| / ||w_before|| "
                                                         "below which a sample counts")
        patience: int = Field(3, ge=1, description="samples in a row below threshold before firing")
        include_biases: bool = Field(False, description="also evaluate 1-D parameters: biases and normalization "
                                                        "scales/shifts (a bias before BatchNorm has no effect on the "
                                                        "loss)")
        converged_below: float = Field(0.01, ge=0, le=1, description="samples do not count while the training "
                                                                     "loss is below this share of its first value")
        lr_decayed_below: float = Field(0.01, ge=0, le=1, description="samples do not count while the learning "
                                                                      "rate is below this share of the run's largest")

    def initial_state(self) -> dict[str, Any]:
        return {"runs": {}, "first_loss": None, "loss": None, "peak_lr": None, "last_lr": None}

    def needs(self) -> list[Need]:
        return [Need("update_ratio"), Need("loss"), Need("lr"), Need("param_ndim")]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        ndims = remember_ndims(self.state, sample)
        resting = at_rest(self.state, sample, p.converged_below, p.lr_decayed_below)
        return judge_layers(self, finite_items(sample.series("update_ratio")), sample.step, patience=p.patience,
                            counts=lambda ratio: ratio < p.threshold and not resting, fire=self._fired,
                            ndims=None if p.include_biases else ndims)

    def _fired(self, name: str, ratio: float, streak: Streak) -> Verdict:
        p = self.params
        return self.fire(
            name, value=ratio, threshold=p.threshold,
            message=f"{name} barely changes: update ratio ||dw||/||w|| = {ratio:.2g} < {p.threshold:g} "
                    f"for {streak.count} samples ({streak.steps}), so it is not learning",
            suggestion="the learning rate is too low (or a scheduler decayed it to ~0): raise it, try "
                       "1e-4..1e-3 for Adam/AdamW or 1e-2..1e-1 for SGD; check that the optimizer holds this "
                       "parameter and that its gradient is not vanishing",
            update_ratio=ratio, samples=streak.count, since_step=streak.since)
