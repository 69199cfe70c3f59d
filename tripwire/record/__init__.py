"""The run record: one SQLite file per run with every sampled statistic and every finding.

Writing (:class:`RunRecord`) happens off the training thread; reading (:class:`Run`) works
while a run is still being written.

Example:
    >>> import tempfile
    >>> from tripwire.stats import Sample
    >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="r1", framework="torch")
    >>> rec.add_sample(Sample(step=10, epoch=0, stats={"grad_norm": {"fc.weight": float("nan")}}))
    >>> rec.close()
    >>> run = Run(rec.directory)
    >>> run.names(), run.subjects("grad_norm"), run.series("grad_norm", "fc.weight")
    (['grad_norm'], ['fc.weight'], (array([10]), array([nan])))
"""

from tripwire.record.reader import Run
from tripwire.record.schema import FILENAME, SCHEMA_VERSION, RecordError, redact_config
from tripwire.record.writer import RunRecord, default_run_name

__all__ = ["FILENAME", "SCHEMA_VERSION", "RecordError", "Run", "RunRecord", "default_run_name", "redact_config"]
