"""What runs beside the model in the plain-loop benchmark: the columns of ``overhead_torch.py``.

Nothing (the baseline and an A/A control), ``tripwire.torch.Tripwire`` with the default config and
with every torch rule every step, the peers a user of a plain loop would pick instead
(``wandb.watch(model, log="all")`` every step and every 10 steps, ``wandb.log`` of the loss alone,
Lightning's ``grad_norm`` read with ``.item()``), and the floor: one fused norm pass over
parameters and gradients per step. Each is a :class:`LoopMonitor`, called where a user puts such
code: :meth:`~LoopMonitor.before_step` between ``backward`` and ``optimizer.step()``,
:meth:`~LoopMonitor.after_step` after ``optimizer.zero_grad()``.

wandb is not a dependency of tripwire: without it its columns are unavailable (:func:`unavailable`).

Example:
    >>> sorted(VARIANTS)
    ['aa', 'default', 'every', 'floor', 'grad_norm', 'none', 'wandb_log', 'watch1', 'watch10']
    >>> model = torch.nn.Linear(3, 2)
    >>> model(torch.ones(4, 3)).sum().backward()
    >>> monitor = VARIANTS["grad_norm"].start(model, None, None)
    >>> monitor.before_step(); sorted(monitor.last)
    ['grad_2.0_norm/bias', 'grad_2.0_norm/weight', 'grad_2.0_norm_total']
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch.utilities import grad_norm

from _lightning_monitors import every_rule_config, fused_floor
from tripwire.torch import Tripwire


class LoopMonitor:
    """Nothing beside the model (the baseline); the base of every column."""

    def before_step(self) -> None:
        """After ``loss.backward()``, before ``optimizer.step()``: the gradients are there."""

    def after_step(self, loss: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        """After ``optimizer.step(); optimizer.zero_grad()``, once per batch."""

    def close(self) -> list[str]:
        """End of training (not timed); the rules that fired, for tripwire."""
        return []


class TripwireMonitor(LoopMonitor):
    """``Tripwire(model, optimizer, config)`` and ``tw.step(loss, inputs=x, labels=y)`` per batch, as in
    the README's quickstart; its run record goes to ``record_dir`` (none when None)."""

    def __init__(self, model: torch.nn.Module, optimizer: Any, config: Any, record_dir: str | None) -> None:
        self.tw = Tripwire(model, optimizer, config, log_dir=record_dir or False)

    def after_step(self, loss: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.tw.step(loss, inputs=inputs, labels=labels)

    def close(self) -> list[str]:
        self.tw.close()
        return sorted({f.rule for f in self.tw.findings})


class WandbMonitor(LoopMonitor):
    """An offline wandb run (``wandb.init(mode="offline")``, files in a temporary folder), with
    ``wandb.watch(model, log="all", log_freq=log_freq)`` unless ``log_freq`` is None, and
    ``wandb.log({"loss": loss})`` every step, as a user logs.

    In wandb 0.31 ``watch`` registers a forward hook on the model (parameter histograms) and a
    gradient hook on every parameter (gradient histograms); each counts calls and, every
    ``log_freq``-th one, reads the tensor's min and max and a histogram to the host and adds it to
    the pending history row (``commit=False``); ``wandb.log`` commits the row, the histograms with it.
    """

    def __init__(self, model: torch.nn.Module, log_freq: int | None) -> None:
        import wandb

        self.wandb, self.model, self.watching = wandb, model, log_freq is not None
        self.folder = tempfile.TemporaryDirectory(prefix="tripwire-bench-wandb-")
        self.run = wandb.init(mode="offline", dir=self.folder.name, project="tripwire-overhead",
                              settings=wandb.Settings(silent=True, console="off"))
        if self.watching:
            self.run.watch(model, log="all", log_freq=log_freq)

    def after_step(self, loss: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.run.log({"loss": loss})

    def close(self) -> list[str]:
        if self.watching:
            self.run.unwatch(self.model)
        self.run.finish()  # waits until the offline files are written: nothing runs on into the next timing
        self.folder.cleanup()
        return []


class GradNormItem(LoopMonitor):
    """Lightning's ``grad_norm(model, norm_type=2)`` every step, each norm read with ``.item()`` to log."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.last: dict[str, float] = {}

    def before_step(self) -> None:
        self.last = {name: norm.item() for name, norm in grad_norm(self.model, norm_type=2).items()}


class Floor(LoopMonitor):
    """The floor: one fused norm pass over the gradients and the parameters, left on the device."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.last: torch.Tensor | None = None

    def before_step(self) -> None:
        self.last = fused_floor(self.model)


@dataclass(frozen=True)
class Variant:
    """A column: its label, a factory ``start(model, optimizer, record_dir)``, and whether it needs wandb."""

    label: str
    start: Callable[[torch.nn.Module, Any, str | None], LoopMonitor]
    needs_wandb: bool = False


VARIANTS: dict[str, Variant] = {
    "none": Variant("no monitor", lambda m, o, rec: LoopMonitor()),
    "aa": Variant("no monitor (A/A)", lambda m, o, rec: LoopMonitor()),
    "default": Variant("tripwire default", lambda m, o, rec: TripwireMonitor(m, o, None, rec)),
    "every": Variant("tripwire every rule, every step",
                     lambda m, o, rec: TripwireMonitor(m, o, every_rule_config(1), rec)),
    "watch1": Variant("wandb.watch all, log_freq=1", lambda m, o, rec: WandbMonitor(m, 1), needs_wandb=True),
    "watch10": Variant("wandb.watch all, log_freq=10", lambda m, o, rec: WandbMonitor(m, 10), needs_wandb=True),
    "wandb_log": Variant("wandb.log(loss) only", lambda m, o, rec: WandbMonitor(m, None), needs_wandb=True),
    "grad_norm": Variant("grad_norm .item()", lambda m, o, rec: GradNormItem(m)),
    "floor": Variant("floor (fused norms)", lambda m, o, rec: Floor(m)),
}


def unavailable(columns: list[str]) -> dict[str, str]:
    """The columns among ``columns`` that cannot run here, with the reason shown in their cells."""
    missing = importlib.util.find_spec("wandb") is None
    return {c: "wandb not installed" for c in columns if VARIANTS[c].needs_wandb and missing}
