"""`LrScale`: the ``reduce_lr`` action in torch: the learning rates the optimizers use, scaled.

A learning-rate scheduler writes ``group["lr"]`` at every ``scheduler.step()``, so a rate lowered
in place would be overwritten at the next one (``LambdaLR``, ``OneCycleLR``, cosine and linear
schedules compute it from their base rates), or compounded by the chainable ones. So the scale is
applied around each optimizer step instead: a step pre-hook multiplies every group's rate by the
scale (never below ``min_lr``, nor above the rate itself), and a post-hook puts the scheduler's
value back. The optimizer updates with the scaled rate; the scheduler only ever sees its own.
Until the first reduction no hook is registered (nothing costs anything).

Example:
    >>> import torch
    >>> net = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.SGD(net.parameters(), lr=1.0)
    >>> sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    >>> scale = LrScale()
    >>> scale.attach([opt])
    >>> scale.reduce(0.5, min_lr=0.0)
    (1.0, 0.5)
    >>> seen = []
    >>> _ = opt.register_step_pre_hook(lambda o, a, k: seen.append(o.param_groups[0]["lr"]))
    >>> for _ in range(3):
    ...     net(torch.ones(1, 2)).sum().backward()
    ...     opt.step(); opt.zero_grad(); sched.step()
    >>> [round(lr, 3) for lr in seen], round(opt.param_groups[0]["lr"], 3)   # the schedule x0.5; its own value
    ([0.5, 0.25, 0.167], 0.25)
    >>> scale.detach()
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class LrScale:
    """A scale on the learning rates of some optimizers (see the module docstring).

    Attributes:
        scale: the product of every reduction so far (1.0: none).
        min_lr: no rate is lowered below this.
    """

    def __init__(self) -> None:
        self.scale = 1.0
        self.min_lr = 0.0
        self.optimizers: list[Any] = []
        self._handles: list[Any] = []
        self._own: dict[int, list[Any]] = {}  # optimizer id -> the rates its groups had before the step

    def attach(self, optimizers: Iterable[Any]) -> None:
        """The optimizers whose rates are scaled (hooked now when a scale is set already: a resumed run)."""
        self.detach()
        self.optimizers = [getattr(o, "_optimizer", o) for o in optimizers]  # LightningOptimizer -> torch
        if self.scale != 1.0:
            self._hook()

    def detach(self) -> None:
        """Remove the hooks (the optimizers keep their schedulers' rates)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def reduce(self, factor: float, min_lr: float) -> tuple[float, float]:
        """Multiply the scale by ``factor``; the first group's rate in use before and after (as the
        optimizer will see it at its next step)."""
        if not self.optimizers:
            raise RuntimeError("no optimizer to lower the learning rate of")
        group = self.optimizers[0].param_groups[0]
        before = self._scaled(group["lr"])
        self.scale *= factor
        self.min_lr = min_lr
        if not self._handles:
            self._hook()
        return float(before), float(self._scaled(group["lr"]))

    def _scaled(self, lr: Any) -> Any:
        return max(lr * self.scale, min(lr, self.min_lr))

    def _hook(self) -> None:
        for optimizer in self.optimizers:
            self._handles.append(optimizer.register_step_pre_hook(self._before_step))
            self._handles.append(optimizer.register_step_post_hook(self._after_step))

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        own = [group["lr"] for group in optimizer.param_groups]
        self._own[id(optimizer)] = own
        for group, lr in zip(optimizer.param_groups, own):
            group["lr"] = self._scaled(lr)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        for group, lr in zip(optimizer.param_groups, self._own.pop(id(optimizer), ())):
            group["lr"] = lr

    def state_dict(self) -> dict[str, float]:
        """The scale and the floor (plain Python)."""
        return {"scale": self.scale, "min_lr": self.min_lr}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (before :meth:`attach`)."""
        self.scale = float(state.get("scale", 1.0))
        self.min_lr = float(state.get("min_lr", 0.0))
