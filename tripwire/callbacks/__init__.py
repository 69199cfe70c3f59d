"""Framework callbacks and the statistics collectors behind them, one subpackage per wing.

Nothing here is imported eagerly: each callback module imports its framework on first use
(``from tripwire import LightningTripwire`` loads :mod:`tripwire.callbacks.lightning`), so
``import tripwire.callbacks`` stays as light as ``import tripwire``.

- :mod:`tripwire.callbacks.torch`: the torch collector (usable from any torch loop) and the
  Lightning callback logic; :mod:`tripwire.callbacks.lightning` is the thin public face over it,
  for ``lightning.pytorch`` and ``pytorch_lightning`` alike (:mod:`tripwire.callbacks.pytorch_lightning`
  keeps the old name ``PLTripwire`` for it).
- :mod:`tripwire.callbacks.keras`: ``KerasTripwire`` and its in-graph collector.
- :mod:`tripwire.callbacks.xgboost`: ``XGBoostTripwire`` and what it reads from the booster.
- Shared by the wings, framework-free: :mod:`~tripwire.callbacks.missing_framework` (the error
  naming the extra to install) and :mod:`~tripwire.callbacks.no_gradient` (the notice about
  parameters without a gradient).
"""
