"""The torch wing: statistics collected from any torch training loop, and the Lightning adapter.

Nothing is imported eagerly, so ``import tripwire.callbacks.torch`` imports no torch (the part
names of :mod:`~tripwire.callbacks.torch.parts` need none either).

- :mod:`~tripwire.callbacks.torch.reductions`: the fused math (norms, shares, moments);
- :mod:`~tripwire.callbacks.torch.params`: gradients and weights;
- :mod:`~tripwire.callbacks.torch.activations`: forward hooks;
- :mod:`~tripwire.callbacks.torch.batch`: labels, inputs, the confusion matrix;
- :mod:`~tripwire.callbacks.torch.packing`: one packed vector, one collective, one host copy;
- :mod:`~tripwire.callbacks.torch.parts`: the names of the parts that are switched off on their own;
- :mod:`~tripwire.callbacks.torch.collector`: the orchestration, usable from any torch loop;
- :mod:`~tripwire.callbacks.torch.ranks`: how the ranks of a data-parallel run agree on a decision;
- :mod:`~tripwire.callbacks.torch.driver`: what every torch adapter does between its hooks and the
  monitor (schedule, flush, decision, rank agreement);
- :mod:`~tripwire.callbacks.torch.lightning`: the callback logic behind
  :class:`tripwire.LightningTripwire` (:mod:`tripwire.callbacks.lightning`), one class for both
  Lightning packages.

Example:
    >>> from tripwire.callbacks.torch.parts import GRADIENTS, probe_part
    >>> GRADIENTS, probe_part("fc1")
    ('gradient statistics', "activation probe on module 'fc1'")
"""
