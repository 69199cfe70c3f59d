"""`all_zero`: a weight, gradient or activation tensor is (almost) entirely zero."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import TARGET_PREFIX, LayerParams, Target, finite_items, judge_layers
from tripwire.rules._streak import Streak
from tripwire.stats import Sample

_WHY = {
    "weights": ("its weights are zero", "check the initialization and that nothing (a mask, a huge weight decay, "
                                        "a copy from an empty checkpoint) zeroes them"),
    "gradients": ("it gets no gradient", "check that it is used in forward and connected to the loss (no "
                                         ".detach(), no torch.no_grad / tf.stop_gradient), and that the "
                                         "layers before it are not dead"),
    "activations": ("the layer outputs only zeros", "for a ReLU layer: lower the learning rate, use LeakyReLU/GELU, "
                                                    "check the bias init and the input scale"),
}


@register
class AllZero(Rule):
    """Fire when the share of exact zeros in a tensor is at least ``threshold`` for ``patience``
    samples in a row.

        zero_share = count(x == 0) / numel(x)     (x: a parameter, its gradient, or a layer's output)

    ``on`` picks the tensors: ``weights`` (``weight_zero_frac`` per parameter), ``gradients``
    (``grad_zero_frac`` per parameter) or ``activations`` (``act_zero_frac`` per hooked layer).
    Not in the default set: zero-initialised biases are all zero at step 0 (``patience`` lets
    them move first), and a ReLU layer's output is half zeros when healthy.

    Args:
        on: ``weights``, ``gradients`` or ``activations``. Defaults to ``weights``.
        threshold: share of zeros that counts. Defaults to 1.0 (every element).
        patience: samples in a row before firing. Defaults to 3.
        ignore: glob patterns of parameter/layer names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = AllZero("all_zero", AllZero.Params(on="gradients", patience=1))
        >>> [(v.subject, v.fired) for v in rule.check(Sample(30, stats={"grad_zero_frac": {"fc.weight": 1.0,
        ...                                                                                  "out.weight": 0.1}}))]
        [('fc.weight', True), ('out.weight', False)]
    """

    kind = "all_zero"
    summary = "share of exact zeros in weights/gradients/activations >= threshold"
    in_default_set: ClassVar[bool] = False
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold", "upper", "linear"),)

    class Params(LayerParams):
        """Parameters of `all_zero`."""

        on: Target = Field("weights", description="tensors to check: weights, gradients or activations")
        threshold: float = Field(1.0, gt=0, le=1, description="share of exactly-zero elements that counts")
        patience: int = Field(3, ge=1, description="samples in a row at or above threshold before firing")

    def initial_state(self) -> dict[str, Any]:
        return {"runs": {}}

    def needs(self) -> list[Need]:
        return [Need(f"{TARGET_PREFIX[self.params.on]}_zero_frac")]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        return judge_layers(self, finite_items(sample.series(self._series)), sample.step, patience=p.patience,
                            counts=lambda share: share >= p.threshold, fire=self._fired)

    def _fired(self, name: str, share: float, streak: Streak) -> Verdict:
        p = self.params
        why, fix = _WHY[p.on]
        return self.fire(
            name, value=share, threshold=p.threshold,
            message=f"{share:.0%} of the {p.on} of {name} are exactly zero for {streak.count} samples "
                    f"({streak.steps}): {why}",
            suggestion=fix, zero_share=share, on=p.on, samples=streak.count, since_step=streak.since)
