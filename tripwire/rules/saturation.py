"""`tanh_saturation` and `sigmoid_saturation`: most units of a layer sit on the flat part of
their activation, where the gradient is almost zero."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import LayerParams, finite_items, judge_layers
from tripwire.rules._percent import percent
from tripwire.rules._streak import Streak
from tripwire.stats import CATALOGUE, Sample

_OPTIONS = CATALOGUE["act_tanh_sat_frac"]  # the same options as act_sigmoid_sat_frac


class _SaturationParams(LayerParams):
    """Parameters of `tanh_saturation` and `sigmoid_saturation`."""

    level: float = Field(_OPTIONS.default("level"), gt=0.5, lt=1,
                         description="an output counts as saturated at |y| >= level (tanh), or y <= 1-level or "
                                     "y >= level (sigmoid)")
    share: float = Field(_OPTIONS.default("share"), gt=0, le=1,
                         description="a unit is saturated when saturated in at least this share of the samples of "
                                     "a batch")
    threshold_layer: float = Field(0.5, ge=0, lt=1, description="share of saturated units above which a "
                                                                "layer counts")
    patience: int = Field(2, ge=1, description="samples in a row above threshold_layer before firing")


class _Saturation(Rule):
    """Shared logic; subclasses set ``kind``, ``summary``, the statistic and the wording."""

    stat: ClassVar[str] = ""
    function: ClassVar[str] = ""
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold_layer", "upper", "linear"),)
    Params = _SaturationParams

    def initial_state(self) -> dict[str, Any]:
        return {"runs": {}}

    def needs(self) -> list[Need]:
        return [Need(self.stat, (("level", self.params.level), ("share", self.params.share)))]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        return judge_layers(self, finite_items(sample.series(self._series)), sample.step, patience=p.patience,
                            counts=lambda frac: frac > p.threshold_layer, fire=self._fired)

    def _fired(self, layer: str, frac: float, streak: Streak) -> Verdict:
        p = self.params
        return self.fire(
            layer, value=frac, threshold=p.threshold_layer,
            message=f"{percent(frac, p.threshold_layer)} of the units of {self.function} layer {layer} are saturated "
                    f"(output within {1 - p.level:g} of its limits in >= {p.share:.0%} of the samples; limit "
                    f"{percent(p.threshold_layer)} of the layer) for {streak.count} samples ({streak.steps}): "
                    f"their gradient is ~0, so the layers before {layer} stop learning",
            suggestion="normalize the inputs (zero mean, unit variance), initialize with Glorot/Xavier, lower "
                       "the learning rate, add BatchNorm/LayerNorm before the activation, or use ReLU/GELU",
            saturated_share=frac, level=p.level, share=p.share, samples=streak.count, since_step=streak.since)


@register
class TanhSaturation(_Saturation):
    """Fire when more than ``threshold_layer`` of a tanh layer's units are saturated for
    ``patience`` samples in a row.

    A unit is saturated when ``|y| >= level`` in at least ``share`` of the samples of the
    sampled batch; tanh'(x) = 1 - y^2, so at ``level = 0.99`` its gradient is 2% of the maximum.
    SageMaker required saturation in 99% of the samples, which in a batch of 32 means all 32:
    measured on a 20-64-64 MLP, inputs scaled by 100 leave 8% of first-layer units saturated in
    99% of a batch but 95% of them in 90%, and N(0, 3) weights 67% of the second layer at 90%.
    With ``share = 0.9`` those fire, while healthy tanh MLPs trained with Adam 1e-3..1e-2 or SGD
    0.5 for 1000 steps showed 0% (an aggressive Adam 3e-2 run reached 69%).

    Args:
        level: |y| at or above which an output counts as saturated. Defaults to 0.99.
        share: share of the samples in which a unit must be saturated. Defaults to 0.9.
        threshold_layer: share of saturated units above which a layer counts. Defaults to 0.5.
        patience: samples in a row before firing. Defaults to 2.
        ignore: glob patterns of layer names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import CATALOGUE, Sample

_OPTIONS = CATALOGUE["act_tanh_sat_frac"]  # the same options as act_sigmoid_sat_frac
        >>> rule = TanhSaturation("tanh_saturation", TanhSaturation.Params(patience=1))
        >>> key = rule.needs()[0].key
        >>> key
        'act_tanh_sat_frac[level=0.99,share=0.9]'
        >>> [(v.subject, v.fired) for v in rule.check(Sample(10, stats={key: {"net.1": 0.97, "net.3": 0.02}}))]
        [('net.1', True), ('net.3', False)]
    """

    kind = "tanh_saturation"
    summary = "more than threshold_layer of a tanh layer's units are saturated (|y| >= level)"
    stat = "act_tanh_sat_frac"
    function = "tanh"

    class Params(_SaturationParams):
        """Parameters of `tanh_saturation`."""


@register
class SigmoidSaturation(_Saturation):
    """Fire when more than ``threshold_layer`` of a sigmoid layer's units are saturated for
    ``patience`` samples in a row.

    A unit is saturated when ``y <= 1 - level`` or ``y >= level`` in at least ``share`` of the
    samples of the sampled batch; sigmoid'(x) = y (1 - y), so at ``level = 0.99`` its gradient is
    4% of the maximum. Defaults and their calibration as in ``tanh_saturation`` (inputs scaled by
    100: 77% of first-layer units saturated at share 0.9; healthy runs 0%). A sigmoid *output*
    layer of a confident, well-trained binary classifier is saturated by design: list it in
    ``ignore``.

    Args:
        level: distance from 0 and 1 (as 1 - level) within which an output counts as saturated.
            Defaults to 0.99.
        share: share of the samples in which a unit must be saturated. Defaults to 0.9.
        threshold_layer: share of saturated units above which a layer counts. Defaults to 0.5.
        patience: samples in a row before firing. Defaults to 2.
        ignore: glob patterns of layer names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import CATALOGUE, Sample

_OPTIONS = CATALOGUE["act_tanh_sat_frac"]  # the same options as act_sigmoid_sat_frac
        >>> rule = SigmoidSaturation("sigmoid_saturation", SigmoidSaturation.Params(patience=1))
        >>> key = rule.needs()[0].key
        >>> [(v.subject, v.fired) for v in rule.check(Sample(10, stats={key: {"gate": 0.8}}))]
        [('gate', True)]
    """

    kind = "sigmoid_saturation"
    summary = "more than threshold_layer of a sigmoid layer's units are saturated (y near 0 or 1)"
    stat = "act_sigmoid_sat_frac"
    function = "sigmoid"

    class Params(_SaturationParams):
        """Parameters of `sigmoid_saturation`."""
