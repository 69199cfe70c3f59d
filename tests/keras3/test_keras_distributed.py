"""`KerasTripwire` under `tf.distribute.MirroredStrategy` with 2 logical CPU devices (subprocess)."""

import pytest

from script_kit import script_result

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def result():
    return script_result("mirrored_script.py")


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


def test_loss_spike_is_not_judged_with_a_notice_and_training_goes_on(result):
    assert len(result["spike_notice"]) == 1 and "tf.distribute" in result["spike_notice"][0]
    assert result["spike_trained"] == {"steps": 16, "off": []}
