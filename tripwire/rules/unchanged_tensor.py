"""`unchanged_tensor`: a trainable parameter does not change at all between samples."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import LayerParams, finite_items, judge_layers, remember_ndims
from tripwire.rules._schedule import at_rest
from tripwire.rules._streak import Streak
from tripwire.stats import CATALOGUE, Sample


@register
class UnchangedTensor(Rule):
    """Fire for a trainable parameter that stays allclose to its previous sampled value for
    ``patience`` samples in a row.

    Collectors report ``weight_unchanged = 1`` for a parameter when, elementwise,

        |w - w_prev| <= atol + rtol * |w_prev|          (numpy/torch ``allclose``)

    with ``w_prev`` its value at the previous sample, and 0 otherwise. Frozen parameters
    (``requires_grad=False``, ``trainable=False``) are not reported, so what fires is a
    parameter the optimizer should move but does not: cut off from the loss, missing from the
    optimizer, or with a zero learning rate.

    Samples do not count once the training loss is below ``converged_below`` of its first value:
    a model that fits its data gets tiny gradients, and under Adam a tiny gradient makes a tiny
    step, so a LayerNorm weight can stay within ``rtol`` for a few steps for a good reason. Nor do
    samples whose learning rate is below ``lr_decayed_below`` of the run's largest or rose since
    the previous sample (a schedule annealing to 0 or warming up from 0); a learning rate of 0
    from the start still counts.

    Biases are left out unless ``include_biases``: under SGD a bias followed by BatchNorm gets
    ~0 gradient and stays put, which is harmless.

    Args:
        patience: samples in a row without change before firing (formerly ``num_steps``). Defaults to 3.
        rtol: relative tolerance of the comparison. Defaults to 1e-5.
        atol: absolute tolerance of the comparison. Defaults to 1e-8.
        include_biases: also evaluate 1-D parameters (biases, normalization scales and shifts).
            Defaults to False.
        converged_below: share of the first training loss under which samples do not count.
            Defaults to 0.01.
        lr_decayed_below: share of the run's largest learning rate under which samples do not
            count. Defaults to 0.01.
        ignore: glob patterns of parameter names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import CATALOGUE, Sample
        >>> rule = UnchangedTensor("unchanged_tensor", UnchangedTensor.Params(patience=2))
        >>> key = rule.needs()[0].key
        >>> key
        'weight_unchanged[atol=1e-08,rtol=1e-05]'
        >>> for step in (10, 20):
        ...     verdicts = rule.check(Sample(step, stats={key: {"aux.weight": 1.0, "fc.weight": 0.0}}))
        >>> [(v.subject, v.fired) for v in verdicts]
        [('aux.weight', True), ('fc.weight', False)]
    """

    kind = "unchanged_tensor"
    summary = "a trainable parameter stays allclose to its previous value for patience samples"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("patience", "upper", "int"),)

    class Params(LayerParams):
        """Parameters of `unchanged_tensor`."""

        renamed: ClassVar[dict[str, str]] = {"num_steps": "patience"}
        patience: int = Field(3, ge=1, description="samples in a row without change before firing")
        rtol: float = Field(CATALOGUE["weight_unchanged"].default("rtol"), ge=0,
                            description="relative tolerance of allclose")
        atol: float = Field(CATALOGUE["weight_unchanged"].default("atol"), ge=0,
                            description="absolute tolerance of allclose")
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
        return [Need("weight_unchanged", (("rtol", self.params.rtol), ("atol", self.params.atol))), Need("loss"),
                Need("lr"), Need("param_ndim")]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        ndims = remember_ndims(self.state, sample)
        resting = at_rest(self.state, sample, p.converged_below, p.lr_decayed_below)
        return judge_layers(self, finite_items(sample.series(self._series)), sample.step, patience=p.patience,
                            counts=lambda unchanged: unchanged >= 0.5 and not resting, fire=self._fired,
                            ndims=None if p.include_biases else ndims)

    def _fired(self, name: str, unchanged: float, streak: Streak) -> Verdict:
        p = self.params
        return self.fire(
            name, value=float(streak.count), threshold=float(p.patience),
            message=f"{name} has not changed for {streak.count} samples ({streak.steps}) although "
                    "it is trainable: it is not learning",
            suggestion="check that it is used in forward and connected to the loss (no .detach(), no "
                       "torch.no_grad/tf.stop_gradient on its path), that the optimizer was given this "
                       "parameter, and that its learning rate is not 0; freeze it explicitly "
                       "(requires_grad=False / trainable=False) if intended",
            samples=streak.count, since_step=streak.since, rtol=p.rtol, atol=p.atol)
