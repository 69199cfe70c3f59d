"""Framework callbacks and the statistics collectors behind them.

Nothing here is imported eagerly: each callback module imports its framework on first use
(``from tripwire import LightningTripwire`` loads :mod:`tripwire.callbacks.lightning`), so
``import tripwire.callbacks`` stays as light as ``import tripwire``.

Torch modules: ``torch_reductions`` (fused math), ``torch_params`` (gradients and weights),
``torch_activations`` (forward hooks), ``torch_batch`` (labels, inputs, confusion),
``torch_packing`` (one packed vector, one collective, one host copy) and ``torch_collector``
(orchestration, usable from any torch loop); ``lightning`` / ``pytorch_lightning`` are the
thin adapters over ``_lightning_impl``.
"""
