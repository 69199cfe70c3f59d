"""`nonfinite`: NaN or Inf in the loss, the gradients or the weights."""

from __future__ import annotations

from typing import ClassVar

from tripwire.registry import register
from tripwire.rule import Need, Rule, RuleParams, Verdict
from tripwire.stats import Sample

_WHERE = {"loss_nonfinite": "loss", "grad_nonfinite": "gradients", "weight_nonfinite": "weights"}


@register
class Nonfinite(Rule):
    """Fire as soon as the loss, a gradient or a weight is NaN or Inf.

    Steps that an fp16 loss scaler skipped (it found Inf gradients and lowered its scale) are
    normal under mixed precision and do not count; collectors report them as ``amp_skipped``.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = Nonfinite("nonfinite")
        >>> [v.subject for v in rule.check(Sample(1, stats={"grad_nonfinite": {None: 1.0}})) if v.fired]
        ['gradients']
        >>> [v.fired for v in rule.check(Sample(2, stats={"grad_nonfinite": {None: 1.0},
        ...                                                  "amp_skipped": {None: 1.0}}))]
        [False]
    """

    kind = "nonfinite"
    remediations: ClassVar[tuple[str, ...]] = ("rollback",)
    summary = "NaN/Inf in the loss, gradients or weights (AMP loss-scale skips excepted)"
    severity: ClassVar[str] = "error"
    default_actions: ClassVar[tuple[str, ...]] = ("alert", "stop")

    class Params(RuleParams):
        """No parameters: any non-finite value is a fault."""

    def needs(self) -> list[Need]:
        return [Need("loss_nonfinite"), Need("grad_nonfinite"), Need("weight_nonfinite")]

    def check(self, sample: Sample) -> list[Verdict]:
        out = []
        skipped = (sample.scalar("amp_skipped") or 0.0) > 0
        for key, where in _WHERE.items():
            value = sample.scalar(key)
            if value is None:
                continue
            if value > 0 and not (where == "gradients" and skipped):
                out.append(self.fire(
                    where, value=value, threshold=0.0,
                    message=f"NaN/Inf in the {where} at step {sample.step}",
                    suggestion="lower the learning rate, clip gradients (gradient_clip_val), check the inputs "
                               "for NaN, use bf16 instead of fp16, or add an epsilon to divisions and logs"))
            else:
                out.append(self.clear(where))
        return out
