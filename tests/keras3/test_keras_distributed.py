"""`KerasTripwire` under `tf.distribute.MirroredStrategy` with 2 logical CPU devices (subprocess)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
pytest.importorskip("tensorflow")

SCRIPT = os.path.join(os.path.dirname(__file__), "mirrored_script.py")


@pytest.fixture(scope="module")
def result():
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_two_replicas(result):
    assert result["replicas"] == 2


def test_statistics_are_combined_across_replicas(result):
    assert result["labels_counted"] == 256  # both replicas' halves of the batch
    assert result["grad_norm"] == pytest.approx(result["grad_norm_reference"], rel=1e-3)


def test_a_nan_stops_the_run_once(result):
    assert result["nan_stopped_by"] == "nonfinite"
    assert result["nan_epochs"] == 1
    assert result["nan_findings"] == 1


def test_confusion_counts_each_validation_sample_once(result):
    assert result["confusion_total"] == 320


def test_raise_action_raises_once(result):
    assert result["raised"] == "nonfinite"
