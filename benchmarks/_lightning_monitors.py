"""What runs beside the model in the Lightning benchmarks: the columns of the overhead table.

Nothing (the baseline and an A/A control), tripwire with the default config, tripwire with every
torch rule every step, Lightning's ``grad_norm`` logged every step, a naive per-tensor ``.item()``
monitor, and the floor: one fused norm pass over parameters and gradients per step.

Example:
    >>> sorted(VARIANTS)
    ['aa', 'default', 'every', 'floor', 'grad_norm', 'item', 'none']
    >>> cfg = every_rule_config(1)
    >>> cfg["interval"], "loss_not_decreasing" in cfg["rules"], cfg["rules"]["all_zero_gradients"]
    (1, True, {'type': 'all_zero', 'on': 'gradients'})
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import grad_norm

from tripwire import LightningTripwire
from tripwire.registry import builtin_rules


def torch_rule_types() -> list[str]:
    """Every registered rule type that applies to torch."""
    return sorted(k for k, cls in builtin_rules().items() if "torch" in cls.frameworks)


def every_rule_config(interval: int = 1) -> dict[str, Any]:
    """Every torch rule type, including those outside the default set, and ``all_zero`` /
    ``low_variance`` on weights, gradients and activations, all sampled every ``interval`` steps."""
    rules: dict[str, Any] = {kind: {} for kind in torch_rule_types()}
    for kind in ("all_zero", "low_variance"):
        for on in ("gradients", "activations"):  # "weights" is the rule's default, already above
            rules[f"{kind}_{on}"] = {"type": kind, "on": on}
    rules["low_variance_gradients"]["min"] = 1e-16  # gradients have no default limit (they scale with the loss)
    return {"interval": interval, "rules": rules}


class GradNormLogger(pl.Callback):
    """Lightning's documented recipe: ``self.log_dict(grad_norm(self, norm_type=2))`` every step."""

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        pl_module.log_dict(grad_norm(pl_module, norm_type=2))


class ItemMonitor(pl.Callback):
    """The naive peer: per parameter, gradient norm, mean |g| and zero share, each read with ``.item()``."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[float, float, float]] = {}

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        for name, p in pl_module.named_parameters():
            if p.grad is not None:
                g = p.grad.detach()
                self.last[name] = (g.norm().item(), g.abs().mean().item(), (g == 0).float().mean().item())


def fused_norms(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per-tensor L2 norms in one foreach kernel where torch has it."""
    if hasattr(torch, "_foreach_norm"):
        return list(torch._foreach_norm(tensors))
    return [torch.linalg.vector_norm(t) for t in tensors]


def fused_floor(module: torch.nn.Module) -> torch.Tensor:
    """The floor's work: one fused norm pass over the gradients and one over the parameters of
    ``module``, stacked and left on the device (no host read)."""
    params = [p for p in module.parameters() if p.grad is not None]
    grads = [p.grad.detach() for p in params]
    return torch.stack(fused_norms(grads) + fused_norms([p.detach() for p in params]))


class FusedFloor(pl.Callback):
    """The floor: one fused norm pass over the gradients and the parameters, left on the device."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self.last = fused_floor(pl_module)


@dataclass(frozen=True)
class Variant:
    """A column of the benchmark: a label and a factory for its callbacks (given a record directory)."""

    label: str
    callbacks: Callable[[str | None], list[pl.Callback]]


VARIANTS: dict[str, Variant] = {
    "none": Variant("no callback", lambda rec: []),
    "aa": Variant("no callback (A/A)", lambda rec: []),
    "default": Variant("tripwire default", lambda rec: [LightningTripwire(None, log_dir=rec or False)]),  # 1% budget
    "pinned": Variant("tripwire default, interval 10",  # the default rules sampled every 10 steps, whatever it costs
                      lambda rec: [LightningTripwire(None, interval=10, log_dir=rec or False)]),
    "sparse": Variant("tripwire default, interval 1000",  # almost no samples: the per-step fixed cost
                      lambda rec: [LightningTripwire(None, interval=1000, log_dir=rec or False)]),
    "every": Variant("tripwire every rule, every step",
                     lambda rec: [LightningTripwire(every_rule_config(1), log_dir=rec or False)]),
    "grad_norm": Variant("grad_norm logged", lambda rec: [GradNormLogger()]),
    "item": Variant(".item() monitor", lambda rec: [ItemMonitor()]),
    "floor": Variant("floor (fused norms)", lambda rec: [FusedFloor()]),
}
