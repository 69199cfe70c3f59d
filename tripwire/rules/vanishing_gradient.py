"""`vanishing_gradient`: a parameter's gradient is tiny, absolutely or next to the others'."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, Verdict
from tripwire.rules._layers import LayerParams, finite_items, judge_layers, remember_ndims
from tripwire.rules._loss_history import converged
from tripwire.rules._streak import Streak
from tripwire.stats import Sample


@register
class VanishingGradient(Rule):
    """Fire for a parameter whose gradient vanishes for ``patience`` samples in a row.

    In a sample, parameter ``p`` counts when

        mean|g_p| < threshold        or        ||g_p|| < ratio * max_q ||g_q||

    where the maximum runs over every parameter in the sample (ignored ones and biases
    included). Parameters absent from a sample (no gradient: unused or sparse) are not
    evaluated and keep their count.

    The ratio test needs no absolute scale. Measured on small runs (weights, every 10th of
    150 steps): healthy ReLU MLPs and CNNs keep every ||g_p|| above 2e-2 of the
    largest, a 10-layer ReLU MLP at PyTorch's default init above 1e-4; a 6-layer sigmoid MLP
    reaches 1e-6 and a 10-layer one 1e-9. Attention is the exception among healthy networks:
    while the attention pattern hardly matters to the task, the query and key weights get
    gradients far below the others' (measured on the healthy-run corpus, two samples in a row:
    BERT 8e-6 of the largest and mean |g| 7e-9, ViT 9e-6 and 4e-8, each while the loss falls),
    and Adam moves them all the same. ``ratio = 1e-6`` and ``threshold = 1e-9`` stay 8x below
    those and fire on a 12-layer sigmoid stack trained with SGD (5e-11 and 1e-12).

    The absolute test is off once the training loss has fallen below ``converged_below`` of its
    first value: a model that fits its data has tiny gradients for a good reason (a small
    transformer at loss 3e-4 has embedding gradients of mean 5e-8). The ratio test stays on.

    Biases are left out unless ``include_biases``: a bias followed by BatchNorm has no effect on
    the loss and its gradient is ~1e-8 of the others' in perfectly healthy CNNs.

    Args:
        threshold: mean absolute gradient below which a parameter counts. Defaults to 1e-9.
        ratio: share of the largest gradient norm below which a parameter counts. Defaults to 1e-6.
        patience: samples in a row before firing. Defaults to 2.
        converged_below: share of the first training loss under which the absolute test is off.
            Defaults to 0.01.
        include_biases: also evaluate 1-D parameters (biases, normalization scales and shifts).
            Defaults to False.
        ignore: glob patterns of parameter names to skip. Defaults to none.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = VanishingGradient("vanishing_gradient", VanishingGradient.Params(patience=1))
        >>> sample = Sample(50, stats={"grad_norm": {"net.0.weight": 2e-9, "net.18.weight": 0.4},
        ...                            "grad_abs_mean": {"net.0.weight": 1e-10, "net.18.weight": 0.01}})
        >>> [(v.subject, v.fired) for v in rule.check(sample)]
        [('net.0.weight', True), ('net.18.weight', False)]
    """

    kind = "vanishing_gradient"
    summary = "a parameter's mean |grad| < threshold, or its grad norm < ratio x the largest one"
    limits: ClassVar[tuple[Limit, ...]] = (Limit("threshold", "lower", "log"), Limit("ratio", "lower", "log"))

    class Params(LayerParams):
        """Parameters of `vanishing_gradient`."""

        threshold: float = Field(1e-9, ge=0, description="mean absolute gradient below which a parameter counts")
        ratio: float = Field(1e-6, ge=0, lt=1, description="share of the largest parameter gradient norm in "
                                                           "the same sample below which a parameter counts")
        patience: int = Field(2, ge=1, description="samples in a row before firing")
        converged_below: float = Field(0.01, ge=0, le=1, description="the absolute (threshold) test is off while "
                                                                     "the training loss is below this share of "
                                                                     "its first value")
        include_biases: bool = Field(False, description="also evaluate 1-D parameters: biases and normalization "
                                                        "scales/shifts (a bias before BatchNorm has no effect on the "
                                                        "loss)")

    def initial_state(self) -> dict[str, Any]:
        return {"runs": {}, "first_loss": None, "loss": None}

    def needs(self) -> list[Need]:
        return [Need("grad_abs_mean"), Need("grad_norm"), Need("loss"), Need("param_ndim")]

    def check(self, sample: Sample) -> list[Verdict]:
        p = self.params
        ndims = remember_ndims(self.state, sample)
        is_converged = converged(self.state, sample, p.converged_below)
        means = dict(finite_items(sample.series("grad_abs_mean")))
        norms = dict(finite_items(sample.series("grad_norm")))
        largest = max(norms, key=norms.__getitem__, default=None)
        top = norms[largest] if largest is not None else 0.0

        def tiny_mean(mean: float | None) -> bool:
            return mean is not None and mean < p.threshold and not is_converged

        def tiny_rel(norm: float | None) -> bool:
            return norm is not None and top > 0 and norm / top < p.ratio

        def fired(name: str, grads: tuple[float | None, float | None], streak: Streak) -> Verdict:
            mean, norm = grads
            if tiny_mean(mean):
                what, value, limit = f"mean |grad| = {mean:.2g} < {p.threshold:g}", mean, p.threshold
            else:
                rel = norm / top
                what = (f"grad norm {norm:.2g} is {rel:.1e} of the largest ({largest}: {top:.2g}), "
                        f"below ratio {p.ratio:g}")
                value, limit = rel, p.ratio
            return self.fire(
                name, value=value, threshold=limit,
                message=f"vanishing gradient in {name}: {what}, for {streak.count} samples ({streak.steps}); "
                        "this parameter is hardly learning",
                suggestion="use ReLU/GELU instead of sigmoid/tanh in deep stacks, He/Glorot initialization, "
                           "normalization layers (BatchNorm/LayerNorm) or residual connections, or a shallower "
                           "model; check that nothing detaches this part of the graph",
                grad_abs_mean=mean, grad_norm=norm, largest_grad_norm=top, largest=largest, samples=streak.count,
                since_step=streak.since)

        grads = [(name, (means.get(name), norms.get(name))) for name in dict.fromkeys([*norms, *means])]  # model order
        return judge_layers(self, grads, sample.step, patience=p.patience,
                            counts=lambda g: tiny_mean(g[0]) or tiny_rel(g[1]), fire=fired,
                            ndims=None if p.include_biases else ndims)
