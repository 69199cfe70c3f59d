"""`poor_initialization`: weights start at the wrong scale, or with identical units."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import LayerParams, finite_items, skipped
from tripwire.stats import Sample


@register
class PoorInitialization(Rule):
    """Fire for a weight whose initial scale is far from the He/Glorot range, or whose output
    units start with identical incoming weights.

    Collectors compute, once before the first step, for each Linear/Conv weight ``W`` (one row
    per output unit):

        gain = std(W) * sqrt(fan_in)          identical = share of rows equal to the mean row

    The gain is what a layer multiplies the scale of its inputs by. Standard initialisations give
    0.58 (PyTorch's default Linear/Conv), 1.0 (LeCun, orthogonal square), 1.41 (He), and Glorot
    gives g * sqrt(2 fan_in / (fan_in + fan_out)): 0.06 for a 2 -> 1000 layer, up to 2.35 for a
    256 -> 1 layer with the tanh gain g = 5/3. ``[min_gain, max_gain] = [0.05, 3.5]`` is silent
    on all of them and fires for ``N(0, 3)`` weights with fan_in >= 2 (gain 3 * sqrt(fan_in))
    and for ``N(0, 1e-3)`` at fan_in 784 (0.028). A constant initialisation has gain 0 and identical share 1: every unit
    computes the same thing, so units in a stack of such layers never become different.

    A deliberately zero-initialised layer (a LoRA ``B`` matrix, a zero-init output head) also
    fires; list it in ``ignore``. Collectors report ``identical = 0`` for a weight with a single
    output unit, where the check is meaningless.

    Args:
        min_gain: smallest acceptable gain. Defaults to 0.05.
        max_gain: largest acceptable gain. Defaults to 3.5.
        max_identical: largest acceptable share of identical units. Defaults to 0.5.
        ignore: glob patterns of parameter names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = PoorInitialization("poor_initialization")
        >>> sample = Sample(0, stats={"init_weight_gain": {"net.0.weight": 13.6, "net.2.weight": 0.58},
        ...                           "init_identical_rows": {"net.0.weight": 0.0, "net.2.weight": 0.0}})
        >>> [(v.subject, v.fired) for v in rule.check(sample)]
        [('net.0.weight', True), ('net.2.weight', False)]
    """

    kind = "poor_initialization"
    summary = "a weight's initial gain std(w)*sqrt(fan_in) is outside [min_gain, max_gain], or its units are identical"
    limits: ClassVar[tuple[Limit, ...]] = (
        Limit("min_gain", "lower", "log"),
        Limit("max_gain", "upper", "log"),
        Limit("max_identical", "upper", "linear"),
    )

    class Params(LayerParams):
        """Parameters of `poor_initialization`."""

        min_gain: float = Field(0.05, ge=0, description="smallest acceptable std(w)*sqrt(fan_in) before training")
        max_gain: float = Field(3.5, gt=0, description="largest acceptable std(w)*sqrt(fan_in) before training")
        max_identical: float = Field(0.5, ge=0, le=1, description="largest acceptable share of output units "
                                                                  "with identical incoming weights")

        @model_validator(mode="after")
        def _ordered(self):  # noqa: ANN202 - pydantic validator returning self
            if self.min_gain >= self.max_gain:
                raise ValueError(f"min_gain ({self.min_gain}) must be below max_gain ({self.max_gain})")
            return self

    def needs(self) -> list[Need]:
        return [Need("init_weight_gain"), Need("init_identical_rows")]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        gains = dict(finite_items(sample.series("init_weight_gain")))
        identical = dict(finite_items(sample.series("init_identical_rows")))
        out = []
        for name in dict.fromkeys([*gains, *identical]):  # model order, as collected
            if skipped(name, p.ignore):
                continue
            gain, same = gains.get(name), identical.get(name)
            problems, suggestions, value, limit = [], [], None, None
            if same is not None and same > p.max_identical:
                problems.append(f"{same:.0%} of its output units have identical incoming weights "
                                f"(limit {p.max_identical:.0%}), so they compute and learn the same thing")
                suggestions.append("initialise with random values instead of a constant")
                value, limit = same, p.max_identical
            if gain is not None and not p.min_gain <= gain <= p.max_gain:
                too_big = gain > p.max_gain
                problems.append(f"initial gain std(w)*sqrt(fan_in) = {gain:.3g} "
                                + (f"> {p.max_gain:g}: activations grow layer by layer, tanh/sigmoid units "
                                   "saturate and gradients explode" if too_big else
                                   f"< {p.min_gain:g}: signals and gradients shrink layer by layer"))
                suggestions.append("use the framework's default initializer, or He/Kaiming (kaiming_normal_, "
                                   "'he_normal') before ReLU and Glorot/Xavier (xavier_uniform_, 'glorot_uniform') "
                                   "before tanh/sigmoid")
                value, limit = gain, p.max_gain if too_big else p.min_gain
            if not problems:
                out.append(self.clear(name))
                continue
            out.append(self.fire(
                name, value=value, threshold=limit,
                message=f"poor initialization of {name} at step {sample.step}: " + "; ".join(problems),
                suggestion="; ".join(suggestions) + f" (or add '{name}' to ignore if intended)",
                gain=gain, identical_share=same, min_gain=p.min_gain, max_gain=p.max_gain))
        return out
