"""`low_variance`: the variance of a weight, gradient or activation tensor leaves a range."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import TARGET_PREFIX, LayerParams, Target, finite_items, judge_layers, remember_ndims
from tripwire.rules._streak import Streak
from tripwire.stats import Sample


@register
class LowVariance(Rule):
    """Fire when a tensor's variance is below ``min`` (or above ``max``) for ``patience`` samples
    in a row.

        var(x) = mean((x - mean(x))^2)     (x: a parameter, its gradient, or a layer's output)

    ``on`` picks the tensors, as in ``all_zero``: ``weights`` (``weight_var``), ``gradients``
    (``grad_var``) or ``activations`` (``act_var``). The right limits depend on ``on`` and the
    model, so the rule is not in the default set. The default ``min`` of 1e-10 marks a weight
    whose elements have all become the same (collapsed units); healthy weights sit around
    1/fan_in (1e-4..1e-1). Healthy gradients can be far smaller (1e-11 in a healthy MLP), so
    with ``on: gradients`` the rule has no default: set ``min`` or ``max`` from a healthy run.
    ``max`` is off unless set.

    Args:
        on: ``weights``, ``gradients`` or ``activations``. Defaults to ``weights``.
        min: variance below which a sample counts. Defaults to 1e-10.
        max: variance above which a sample counts, or None. Defaults to None.
        patience: samples in a row before firing. Defaults to 3.
        include_biases: with ``on: weights`` or ``gradients``, also evaluate 1-D parameters (biases,
            normalization scales and shifts: zero-initialized biases have variance 0). Defaults to False.
        ignore: glob patterns of parameter/layer names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = LowVariance("tiny_weights", LowVariance.Params(min=1e-6, max=10.0, patience=1))
        >>> [(v.subject, v.fired) for v in rule.check(Sample(30, stats={"weight_var": {"a.weight": 1e-9,
        ...                                                                              "b.weight": 0.01}}))]
        [('a.weight', True), ('b.weight', False)]
    """

    kind = "low_variance"
    summary = "variance of weights/gradients/activations < min (or > max)"
    in_default_set: ClassVar[bool] = False
    limits: ClassVar[tuple[Limit, ...]] = (Limit("min", "lower", "log"), Limit("max", "upper", "log"))

    class Params(LayerParams):
        """Parameters of `low_variance`."""

        on: Target = Field("weights", description="tensors to check: weights, gradients or activations")
        min: float | None = Field(1e-10, ge=0, description="variance below which a sample counts (null: off)")
        max: float | None = Field(None, gt=0, description="variance above which a sample counts (null: off)")
        patience: int = Field(3, ge=1, description="samples in a row outside [min, max] before firing")
        include_biases: bool = Field(False, description="with on: weights or gradients, also evaluate 1-D "
                                                        "parameters: biases and normalization scales/shifts "
                                                        "(zero-initialized, so their variance starts at 0)")

        @model_validator(mode="after")
        def _ordered(self):  # noqa: ANN202 - pydantic validator returning self
            if self.min is not None and self.max is not None and self.min >= self.max:
                raise ValueError(f"min ({self.min}) must be below max ({self.max})")
            if self.min is None and self.max is None:
                raise ValueError("set min, max or both")
            if self.on == "gradients" and not {"min", "max"} & self.model_fields_set:
                raise ValueError("with on: gradients set min (or max) from a healthy run: gradient variances "
                                 "scale with the loss and the model (a healthy MLP's reach 1e-11), so the "
                                 "default min of 1e-10 would fire on healthy training")
            return self

    def initial_state(self) -> dict[str, Any]:
        return {"runs": {}}

    def needs(self) -> list[Need]:
        target = Need(f"{TARGET_PREFIX[self.params.on]}_var")
        return [target] if self.params.on == "activations" else [target, Need("param_ndim")]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        ndims = remember_ndims(self.state, sample)
        vectors_out = p.on != "activations" and not p.include_biases
        return judge_layers(self, finite_items(sample.series(self._series)), sample.step, patience=p.patience,
                            counts=lambda var: self._low(var) or self._high(var), fire=self._fired,
                            ndims=ndims if vectors_out else None)

    def _low(self, var: float) -> bool:
        return self.params.min is not None and var < self.params.min

    def _high(self, var: float) -> bool:
        return self.params.max is not None and var > self.params.max

    def _fired(self, name: str, var: float, streak: Streak) -> Verdict:
        p = self.params
        if self._low(var):
            what, limit = f"variance {var:.2g} < min {p.min:g}", p.min
            why = ("its elements are (nearly) all equal" if p.on != "gradients" else "it barely gets a gradient")
            fix = ("check the initialization (constant or tiny), the weight decay and the learning rate"
                   if p.on != "gradients" else "see vanishing_gradient: activation choice, initialization, "
                                               "normalization layers")
        else:
            what, limit = f"variance {var:.2g} > max {p.max:g}", p.max
            why = "its values are spread far wider than expected"
            fix = "lower the learning rate, add weight decay or normalization, check the inputs' scale"
        return self.fire(
            name, value=var, threshold=limit,
            message=f"{p.on} of {name}: {what} for {streak.count} samples ({streak.steps}): {why}",
            suggestion=fix, variance=var, on=p.on, samples=streak.count, since_step=streak.since)
