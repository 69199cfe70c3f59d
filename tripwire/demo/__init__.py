"""`tripwire demo`: a short training with planted faults that shows what tripwire finds.

One module per framework; :func:`run_demo` picks the first one installed (Lightning, then
XGBoost) unless told which.

Example (not run here: it trains for a few seconds)::

    from tripwire.demo import run_demo
    run_demo(out_dir="tripwire_demo")      # prints findings, writes the record and the report
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

FRAMEWORKS = {"lightning": ("lightning", "tripwire.demo.lightning_demo"),
              "xgboost": ("xgboost", "tripwire.demo.xgboost_demo")}


def available() -> list[str]:
    """Demo frameworks whose package is installed, in order of preference."""
    return [name for name, (package, _) in FRAMEWORKS.items() if importlib.util.find_spec(package) is not None]


def run_demo(framework: str | None = None, out_dir: str | Path = "tripwire_demo", *, report: bool = True) -> dict:
    """Train with planted faults, print the summary, write the run record and (optionally) the report.

    The demo's own output is tripwire's: an alert line per finding as it fires, then the summary
    naming the run record (under ``out_dir``) and the report; the framework's start-up chatter is
    left out.

    Returns:
        dict with ``findings`` (list of Finding), ``stopped_by``, ``record`` (run directory) and
        ``report`` (HTML path or None).

    Raises:
        RuntimeError: no supported framework is installed, or ``framework`` is not installed.
    """
    import importlib

    names = available()
    if framework is None:
        if not names:
            raise RuntimeError("the demo needs Lightning or XGBoost: pip install -e '.[lightning,report]'")
        framework = names[0]
    if framework not in FRAMEWORKS:
        raise RuntimeError(f"unknown demo framework {framework!r}; valid: {', '.join(FRAMEWORKS)}")
    if framework not in names:
        raise RuntimeError(f"{framework} is not installed: pip install -e '.[{framework},report]'")
    module = importlib.import_module(FRAMEWORKS[framework][1])
    result = module.run(Path(out_dir))  # the monitor's summary waits for the report
    result["report"] = None
    if report and result.get("record"):
        from tripwire.report import write_report

        try:
            result["report"] = write_report(result["record"])
        except ImportError as exc:  # plotly missing: the record is still there
            print(f"tripwire: no report ({exc}); pip install -e '.[report]' then: tripwire report {result['record']}")
    print(result.pop("monitor").summary(report_path=result["report"]))
    return result
