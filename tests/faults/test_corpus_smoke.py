"""The healthy-run corpus (``benchmarks/corpus.py``) keeps working: for each framework a fast
healthy entry runs through the corpus runner with no finding of the default rules, and its fault
twin makes the expected rule fire; the corpus modules' examples hold."""

from __future__ import annotations

import doctest
import importlib
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from corpus.registry import load
from corpus.runner import run_entry
from corpus.table import markdown, text_table

PAIRS = [
    pytest.param("lightning/lstm", "lightning", marks=pytest.mark.torch, id="lightning"),
    pytest.param("keras/embedding_text", "keras", marks=pytest.mark.keras, id="keras"),
    pytest.param("xgboost/digits", "xgboost", marks=pytest.mark.xgboost, id="xgboost"),
]
FRAMEWORK_MODULES = {"lightning": "lightning", "keras": "keras", "xgboost": "xgboost"}


@pytest.mark.parametrize(("name", "framework"), PAIRS)
def test_a_healthy_entry_stays_silent_and_its_twin_names_the_fault(name, framework, tmp_path):
    pytest.importorskip(FRAMEWORK_MODULES[framework])
    corpus = load()
    healthy, *twins = corpus.select([name])
    assert healthy.framework == framework and twins, "the pair must be a healthy entry with a twin"

    quiet = run_entry(healthy, tmp_path)
    assert quiet.error == "", quiet.error
    assert quiet.findings == [], quiet.findings
    # shadow: true recorded what every default rule needs: calibrate gave them margins
    measured = {m["rule"] for m in quiet.margins if m["note"] != "no data"}
    assert measured, quiet.margins
    assert all(m["fired"] is None for m in quiet.margins)

    for twin in twins:
        fired = run_entry(twin, tmp_path)
        assert fired.error == "", fired.error
        assert fired.caught, (twin.expect, fired.first_steps())

    report = text_table([quiet, fired])
    assert "healthy runs with 0 findings: 1 of 1" in report
    assert "twins where an expected rule fired: 1 of 1 (100%)" in report
    assert f"| {name} |" in markdown([quiet, fired])


@pytest.mark.parametrize("module", ["registry", "data", "labels", "table", "judgements"])
def test_the_examples_in_the_corpus_modules_hold(module):
    result = doctest.testmod(importlib.import_module(f"corpus.{module}"))
    assert result.attempted > 0 and result.failed == 0
