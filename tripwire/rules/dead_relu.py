"""`dead_relu`: most units of a ReLU layer never activate."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import LayerParams, finite_items, judge_layers
from tripwire.rules._percent import percent
from tripwire.rules._streak import Streak
from tripwire.stats import CATALOGUE, Sample


@register
class DeadRelu(Rule):
    """Fire when more than ``threshold_layer`` of a ReLU layer's units are dead for ``patience``
    samples in a row.

    A unit is dead when it is active (``y > 0``) in fewer than ``threshold_inactivity`` of the
    samples of the sampled batch; collectors report per layer

        dead_share = count(units active in < threshold_inactivity of the samples) / units

    A healthy ReLU layer has most outputs at zero for any one sample but each unit active for
    some samples, so its dead share is small (measured: 0-2% for a 20-64-64 MLP at init, with
    47% zero outputs). A layer pushed to negative pre-activations (a large LR step, a bias of
    -10) reaches 100%. ``patience`` absorbs an unlucky batch for sparse layers. The squeeze
    units of a squeeze-excitation block (a ReLU beside a sigmoid gate, on a globally pooled map)
    are not measured in PyTorch: each sees one average per image, so half of them sit off from
    initialization in healthy MobileNetV3/EfficientNet training (see
    :func:`tripwire.callbacks.torch.activations.gate_relus`).

    Args:
        threshold_inactivity: share of the samples below which a unit's activity makes it dead.
            Defaults to 0.01.
        threshold_layer: share of dead units above which a layer counts. Defaults to 0.5.
        patience: samples in a row before firing. Defaults to 2.
        ignore: glob patterns of layer names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import CATALOGUE, Sample
        >>> rule = DeadRelu("dead_relu", DeadRelu.Params(patience=1))
        >>> key = rule.needs()[0].key
        >>> key
        'act_dead_frac[inactive_below=0.01]'
        >>> [(v.subject, v.fired) for v in rule.check(Sample(120, stats={key: {"fc1.act": 0.9, "fc2.act": 0.05}}))]
        [('fc1.act', True), ('fc2.act', False)]
    """

    kind = "dead_relu"
    summary = "more than threshold_layer of a ReLU layer's units are active in < threshold_inactivity of samples"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold_layer", "upper", "linear"),)

    class Params(LayerParams):
        """Parameters of `dead_relu`."""

        threshold_inactivity: float = Field(CATALOGUE["act_dead_frac"].default("inactive_below"), gt=0, lt=1,
                                            description="share of the samples below which a unit's activity "
                                                        "makes it dead")
        threshold_layer: float = Field(0.5, ge=0, lt=1, description="share of dead units above which a layer counts")
        patience: int = Field(2, ge=1, description="samples in a row above threshold_layer before firing")

    def initial_state(self) -> dict[str, Any]:
        return {"runs": {}}

    def needs(self) -> list[Need]:
        return [Need("act_dead_frac", (("inactive_below", self.params.threshold_inactivity),))]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        return judge_layers(self, finite_items(sample.series(self._series)), sample.step, patience=p.patience,
                            counts=lambda frac: frac > p.threshold_layer, fire=self._fired)

    def _fired(self, layer: str, frac: float, streak: Streak) -> Verdict:
        p = self.params
        return self.fire(
            layer, value=frac, threshold=p.threshold_layer,
            message=f"{percent(frac, p.threshold_layer)} of the units of ReLU layer {layer} are dead (active in < "
                    f"{percent(p.threshold_inactivity)} of the samples; limit {percent(p.threshold_layer)}) for "
                    f"{streak.count} "
                    f"samples ({streak.steps}): they pass no gradient and no longer learn",
            suggestion="lower the learning rate, use LeakyReLU/GELU, check the bias init (not strongly "
                       "negative) and the input scale, add BatchNorm before the activation",
            dead_share=frac, threshold_inactivity=p.threshold_inactivity, samples=streak.count,
            since_step=streak.since)
