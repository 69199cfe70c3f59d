"""Host copies of a torch training state for the ``rollback`` action (:mod:`tripwire.rollback`).

A state is the model's ``state_dict`` and each optimizer's (Adam's moments and step counts
included), and an AMP grad scaler's, every tensor copied to host memory so that later training
does not change it and accelerator memory is not doubled. Learning-rate schedulers and random
generators are not part of it: a rollback does not rewind the step counter (the data moves on
to the next batches), and the schedule and the random streams follow that counter.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(2, 1)
    >>> opt = torch.optim.Adam(model.parameters(), lr=0.1)
    >>> kept = TrainingState(model, [opt])
    >>> state = kept.capture()
    >>> model(torch.ones(1, 2)).sum().backward(); opt.step()
    >>> before = model.weight.detach().clone()
    >>> kept.restore(state)
    >>> bool(torch.equal(model.weight, before)), opt.state_dict()["state"] == {}
    (False, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch


def host_copy(value: Any) -> Any:
    """``value`` with every tensor in it (in dicts, lists, tuples) copied to host memory."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: host_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(host_copy(v) for v in value)
    return value


class TrainingState:
    """Captures and restores a model and its optimizers (see the module docstring).

    Args:
        model: the module trained (under DDP, the wrapped module or the wrapper: both hold the same weights).
        optimizers: its optimizers (wrappers such as Lightning's are looked through).
        scaler: ``() -> GradScaler or None``, read at each capture and restore.
    """

    def __init__(self, model: torch.nn.Module, optimizers: Sequence[Any],
                 scaler: Callable[[], Any] = lambda: None) -> None:
        self.model = model
        self.optimizers = [getattr(o, "_optimizer", o) for o in optimizers]
        self.scaler = scaler

    def capture(self) -> dict[str, Any]:
        """A host copy of the state now."""
        scaler = self.scaler()
        return {"model": host_copy(self.model.state_dict()),
                "optimizers": [host_copy(o.state_dict()) for o in self.optimizers],
                "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None}

    def restore(self, state: dict[str, Any]) -> None:
        """Put ``state`` back in place (the tensors are copied onto the parameters' devices)."""
        self.model.load_state_dict(state["model"])
        for optimizer, saved in zip(self.optimizers, state["optimizers"], strict=True):
            optimizer.load_state_dict(saved)
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
        scaler = self.scaler()
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
