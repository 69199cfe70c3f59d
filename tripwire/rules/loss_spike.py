"""`loss_spike`: the training loss or the global gradient norm jumps far above its recent history."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from tripwire.registry import register
from tripwire.rule import Limit, Need, Rule, RuleParams, Verdict
from tripwire.stats import CATALOGUE, SPIKE_SERIES, STEPS_SKIPPED, Sample


def _default(option: str) -> Any:
    return CATALOGUE["spike_count"].default(option)


@register
class LossSpike(Rule):
    """Fire when the training loss or the global gradient norm of some optimizer step is more than
    ``limit`` robust standard deviations above its history, on logarithms (the noise of a loss and
    a gradient norm is multiplicative; see :mod:`tripwire.callbacks.torch.spike`)::

        z = (log x - median) / scale             over the last `window` steps that were no spike
        scale = max(1.4826 MAD, (largest - median) / c(n), 0.01)

    (``c(n)``: the expected largest of ``n`` normal draws; the second term covers the heavy tail of
    small-batch losses, see :mod:`tripwire.callbacks.torch.spike`)

    Unlike the other rules, this one is judged **at every optimizer step, on the device** (see
    :mod:`tripwire.callbacks.torch.spike`): a spike between two sampled steps is not missed, and
    the ``skip_step`` action can leave that step's update out before it is applied. The sample
    then carries how many steps spiked since the previous one, the largest z and the last
    spiking step; the rule fires on a sample whose largest z is above ``limit`` and clears on one
    without a spike, so each burst of spikes is one finding.

    The defaults are the practice of OLMo-core and Levanter (z > 6 over 128 steps, after 64
    warm-up steps), on logarithms. A spike is one-sided: a loss that falls is learning. The
    history keeps no spike (so a spike does not raise the bar for the next), and its scale is at
    least 0.01 (a series that barely varies still needs to grow by about ``limit`` percent). In the plain
    loop the loss reaches tripwire after the optimizer step (``tw.step(loss)``), so there
    ``skip_step`` acts on the gradient norm's spikes and the loss's are reported. In Keras ``fit``
    both are judged inside the compiled train step, before the update, except on JAX, where only the
    gradient norm is (:mod:`tripwire.callbacks.keras.spike`).

    Not in the default set, for its per-step cost and because a run whose loss legitimately jumps
    (a curriculum switching data sources, a learning-rate restart) should opt in knowingly. On the
    healthy Lightning corpus (``benchmarks/corpus.py``, 15 runs) it is silent with these defaults,
    the closest approach z 4.91; ``tripwire calibrate`` replays it with other limits on recorded runs.

    Args:
        limit: robust z-score above which a step is a spike. Defaults to 6.
        window: steps in the history. Defaults to 128.
        warmup: steps in the history before the first verdict. Defaults to 64.
        series: what is judged: ``loss``, ``grad_norm`` or both. Defaults to both.

    Example:
        >>> from tripwire.stats import Sample
        >>> rule = LossSpike("loss_spike", LossSpike.Params(series=["loss"]))
        >>> key = {n.stat: n.key for n in rule.needs()}
        >>> calm = Sample(10, stats={key["spike_count"]: {None: 0.0}, key["spike_max_z"]: {None: 2.1}})
        >>> spike = Sample(20, stats={key["spike_count"]: {None: 1.0}, key["spike_max_z"]: {None: 48.0},
        ...                           key["spike_last_step"]: {None: 17.0}})
        >>> [v.fired for s in (calm, spike) for v in rule.check(s)]
        [False, True]
        >>> rule.check(spike)[0].message
        'loss spike at step 17: 48 robust deviations above its last 128 steps (limit 6)'
    """

    kind = "loss_spike"
    summary = "loss or global grad norm > limit robust SDs above its last window steps (every step, on the device)"
    in_default_set = False
    remediations: ClassVar[tuple[str, ...]] = ("skip_step", "reduce_lr", "rollback")
    rearm_after = 1  # one finding per burst already: a new burst is a new event, and reduce_lr acts on it
    limits: ClassVar[tuple[Limit, ...]] = (Limit("limit", "upper", "linear"),)

    class Params(RuleParams):
        """Parameters of `loss_spike`."""

        limit: float = Field(_default("limit"), gt=0, description="robust z-score above which a step is a spike")
        window: int = Field(_default("window"), ge=8, le=100_000, description="steps in the rolling history")
        warmup: int = Field(_default("warmup"), ge=2, description="steps in the history before the first verdict")
        series: tuple[Literal["loss", "grad_norm"], ...] = Field(SPIKE_SERIES, min_length=1,
                                                                  description="what is judged: loss, grad_norm")

        @model_validator(mode="after")
        def _warmup_fits(self) -> LossSpike.Params:
            if self.warmup > self.window:
                raise ValueError(f"warmup ({self.warmup}) must not exceed window ({self.window})")
            return self

    def _needs(self, series: str) -> dict[str, Need]:
        p = self.params
        history = (("series", series), ("window", p.window), ("warmup", p.warmup))
        return {"spike_count": Need("spike_count", (*history, ("limit", p.limit))),
                "spike_max_z": Need("spike_max_z", history), "spike_last_step": Need("spike_last_step", history)}

    def needs(self) -> list[Need]:
        spikes = [need for series in dict.fromkeys(self.params.series) for need in self._needs(series).values()]
        return [*spikes, Need("loss")]  # the monitor tells the loss before and after a remediation

    def check(self, sample: Sample) -> list[Verdict]:
        verdicts = []
        for series in dict.fromkeys(self.params.series):
            keys = self._needs(series)
            count, max_z = sample.scalar(keys["spike_count"]), sample.scalar(keys["spike_max_z"])
            if count is None and max_z is None:
                continue
            if max_z is None or not math.isfinite(max_z) or max_z <= self.params.limit:
                verdicts.append(self.clear(series))
                continue
            verdicts.append(self._fire(series, sample, max_z, count, sample.scalar(keys["spike_last_step"])))
        return verdicts

    def _fire(self, series: str, sample: Sample, max_z: float, count: float | None, last: float | None) -> Verdict:
        p, name = self.params, "loss" if series == "loss" else "global gradient norm"
        at = int(last) if last is not None and last >= 0 else sample.step
        skipped = sample.scalar(STEPS_SKIPPED)
        more = f"; {int(count)} spiking {self.step_word}s since the previous sample" if count and count > 1 else ""
        done = f"; skip_step left out {int(skipped)} update(s)" if skipped else ""
        remedy = "if spikes recur, lower the learning rate or clip gradients" if skipped is not None else \
            "add skip_step to the rule's actions to leave such updates out; if spikes recur, lower the learning " \
            "rate or clip gradients"
        return self.fire(
            series, value=max_z, threshold=p.limit,
            message=f"{name} spike at {self.step_word} {at}: {max_z:.3g} robust deviations above its last "
                    f"{p.window} {self.step_word}s (limit {p.limit:g}){more}{done}",
            suggestion=f"look for a bad batch at that step (outliers, wrong labels, a corrupt file); {remedy}",
            series=series, max_z=max_z, spikes=count, last_spike_step=at, steps_skipped=skipped)
