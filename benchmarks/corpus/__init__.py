"""The healthy-run corpus and its fault twins (see ``benchmarks/corpus.py`` and ``registry.py``)."""
