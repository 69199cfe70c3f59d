"""The user's own model and optimizer inside the wrappers that training libraries put around them.

A plain loop hands tripwire what it trains with: a model that may be compiled
(``torch.compile``), wrapped for data parallelism (``DistributedDataParallel``) or by Lightning
Fabric (``fabric.setup``) or Accelerate (``accelerator.prepare``), and an optimizer that Fabric or
Accelerate may wrap. Hooks go on the model's own modules (their names are the user's, e.g.
``encoder.0``, not ``_forward_module.module.encoder.0``) and on the innermost optimizer, whose
step runs exactly when the parameters are updated (a wrapper may skip it: a step the loss scaler
skipped, a micro-batch of gradient accumulation).

Example:
    >>> import torch
    >>> net = torch.nn.Linear(2, 2)
    >>> inner_module(torch.compile(net)) is net
    True
    >>> sgd = torch.optim.SGD(net.parameters(), lr=0.1)
    >>> class Wrapper:                                    # as Fabric and Accelerate hold theirs
    ...     def __init__(self, optimizer):
    ...         self.optimizer = optimizer
    >>> inner_optimizer(Wrapper(sgd)) is sgd, inner_optimizer(sgd) is sgd
    (True, True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

#: attributes that hold the wrapped module: ``torch.compile``'s, Lightning Fabric's
MODULE_ATTRIBUTES = ("_orig_mod", "_original_module")
#: attributes that hold the wrapped optimizer: Fabric's and Accelerate's, Lightning's
OPTIMIZER_ATTRIBUTES = ("optimizer", "_optimizer")


def inner_module(model: nn.Module) -> nn.Module:
    """The module inside compile, DDP/DataParallel and Fabric wrappers (``model`` when none)."""
    seen: set[int] = set()
    while id(model) not in seen:
        seen.add(id(model))
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
            continue
        inner = next((m for m in (getattr(model, a, None) for a in MODULE_ATTRIBUTES) if isinstance(m, nn.Module)),
                     None)
        if inner is not None:
            model = inner
    return model


def inner_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The ``torch.optim.Optimizer`` inside Fabric, Accelerate and Lightning wrappers."""
    seen: set[int] = set()
    while id(optimizer) not in seen:
        seen.add(id(optimizer))
        inner = next((o for o in (getattr(optimizer, a, None) for a in OPTIMIZER_ATTRIBUTES)
                      if isinstance(o, torch.optim.Optimizer)), None)
        if inner is not None:
            optimizer = inner
    return optimizer
