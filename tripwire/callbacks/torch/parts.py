"""The parts of the torch collector that are switched off on their own when they fail.

Each name is how the warning and the end-of-run summary call the part (see
:mod:`tripwire.failopen`); the Lightning adapter and the collector run every piece of their
instrumentation under ``monitor.guard`` with one of these names.

Under DDP the ranks must keep doing the same collectives: every flush packs one vector and
all-gathers it. A part in :data:`SHARED` feeds that vector with a layout of its own (its
pieces come and go with the data), so once it is off on one rank only, that rank's vector
would no longer match the others' and the gather would hang. Such a part keeps its place in
the vector of the flush in progress (it packs neutral values: 0 for sums, -inf for maxima,
+inf for minima, so the reduced statistics are those of the other ranks), and the adapter
switches the whole collector off on every rank at the decision of that flush. The other parts
cannot unbalance the ranks: activation probes fill fixed slots of one accumulator, the loss
and validation-loss pieces are packed at every flush whether or not a value came in, and
gradient, weight, initial-weight and user statistics are never gathered.

Example:
    >>> probe_part("encoder.1"), DATA in SHARED, LOSS in SHARED
    ("activation probe on module 'encoder.1'", True, False)
"""

from __future__ import annotations

from tripwire import rollback

COLLECTOR = "statistics collector"
PARAMS = "parameter statistics"
GRADIENTS = "gradient statistics"
WEIGHTS = "weight statistics"
INIT = "initial-weight statistics"
LOSS = "loss statistics"
DATA = "data statistics"
ACTIVATIONS = "activation statistics"
CONFUSION = "confusion matrix"
VAL_LOSS = "validation loss"
USER = "user statistics"
FLUSH = "statistics flush"
DETACH = "removing hooks"
OPTIMIZER_HOOKS = "optimizer step hooks"
SPIKES = "spike detection"
SKIP_STEP = "skip_step action"
ROLLBACK = rollback.PART

#: parts whose failure on one rank would put that rank's packed vector out of step with the others'
SHARED = (ACTIVATIONS, DATA, CONFUSION, FLUSH, SPIKES)


def hook_part(module: str) -> str:
    """The part that registers the activation hook of one module."""
    return f"forward hook on module '{module}'"


def probe_part(module: str) -> str:
    """The part that measures one module's activations inside its forward hook."""
    return f"activation probe on module '{module}'"
