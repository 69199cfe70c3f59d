"""Tiny models and synthetic data shared by the tests, the demo and the benchmarks.

One module per framework, each importing its framework when it is imported: :mod:`.data`
(seeded data sets in numpy, for every framework), :mod:`.torch` (networks, torch-seeded data and
loaders), :mod:`.lightning` (a classifier under Lightning and a quiet Trainer), :mod:`.keras` (a
small dense model). ``import tripwire.kit`` imports no framework.

Example:
    >>> from tripwire.kit.data import tabular
    >>> x, y = tabular(100, features=5)
    >>> x.shape, sorted(set(y.tolist()))
    ((100, 5), [0, 1])
"""
