"""The run report: ``write_report`` turns a run record into one self-contained HTML page, and
``format_summary`` is the text every callback prints when training ends.

The page needs plotly (``pip install 'tripwire[report]'``); the summary needs nothing, and
importing this package imports neither plotly nor the record reader.

Example:
    >>> import tempfile
    >>> from tripwire.record import RunRecord
    >>> from tripwire.stats import Sample
    >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="r1", framework="torch")
    >>> rec.add_sample(Sample(step=10, epoch=0, stats={"loss": {None: 0.5}}))
    >>> rec.close()
    >>> write_report(rec.directory).name
    'report.html'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from tripwire.errors import TripwireError
from tripwire.report.summary import format_summary

if TYPE_CHECKING:
    from tripwire.record import Run

__all__ = ["PlotlyMissing", "ReportError", "format_summary", "open_run", "write_report"]

REPORT_NAME = "report.html"


class ReportError(TripwireError):
    """The report cannot be written: no run record at the path, or plotly is missing."""


class PlotlyMissing(ReportError, ImportError):
    """plotly (the ``report`` extra) is not installed; also an ImportError, so ``except ImportError`` works."""


def open_run(run_path: str | os.PathLike) -> Run:
    """The run record at ``run_path``: a run directory ``<log_dir>/<run_name>/``, its
    ``record.sqlite``, or a log directory (its most recently written run).

    Raises:
        ReportError: ``run_path`` holds no readable run record.
    """
    from tripwire.record import FILENAME, RecordError, Run

    path = Path(run_path)
    try:
        if path.is_dir() and not (path / FILENAME).exists() and any(path.glob(f"*/{FILENAME}")):
            return Run.latest(path)  # a log directory: its most recent run
        return Run(path)
    except (FileNotFoundError, RecordError) as exc:
        raise ReportError(str(exc)) from None


def write_report(run_path: str | os.PathLike | Run, out: str | os.PathLike | None = None) -> Path:
    """Write the HTML report of a run and return its path.

    Args:
        run_path: a run (:func:`open_run`, left open), or where to find one: a run directory
            ``<log_dir>/<run_name>/``, its ``record.sqlite``, or a log directory (its most
            recently written run).
        out: where to write; defaults to ``report.html`` in the run directory.

    Raises:
        PlotlyMissing: plotly is not installed (a ReportError and an ImportError).
        ReportError: ``run_path`` holds no readable run record.
    """
    try:
        import plotly  # noqa: F401 - only whether it is installed
    except ImportError:
        raise PlotlyMissing("the report needs plotly: pip install 'tripwire[report]'") from None
    from tripwire.record import Run
    from tripwire.report.build import build_page

    given = isinstance(run_path, Run)
    run = run_path if given else open_run(run_path)
    try:
        text = build_page(run)
        target = Path(out) if out is not None else run.directory / REPORT_NAME
    finally:
        if not given:
            run.close()
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a reader never sees half a page.
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
