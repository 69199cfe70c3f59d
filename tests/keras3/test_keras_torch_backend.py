"""`KerasTripwire` on the torch backend of Keras 3 (subprocess: the backend is fixed at import)."""

import pytest

from script_kit import script_result

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
pytest.importorskip("torch")


@pytest.fixture(scope="module")
def result():
    return script_result("torch_backend_script.py")


def test_runs_on_torch(result):
    assert result["backend"] == "torch"


def test_gradients_equal_autograd(result):
    assert result["grad_norm"] == pytest.approx(result["grad_norm_reference"], rel=1e-4)


def test_only_interval_steps_are_sampled(result):
    # 32 micro-batches, 2 per optimizer step: 16 steps, sampled at 0, 5, 10, 15
    assert result["sampled_steps"] == [0, 5, 10, 15]


def test_planted_faults_fire(result):
    assert result["dead_relu"] and result["class_imbalance"]
    assert result["nan_stopped_by"] == "nonfinite" and result["nan_epochs"] == 1


def test_healthy_run_is_silent_and_saves(result):
    assert result["healthy_findings"] == []
    assert {"grad_norm", "update_ratio", "act_dead_frac", "label_count", "confusion", "val_loss"} <= \
        set(result["healthy_keys"])
    assert result["clean_after"] and result["loaded_optimizer"] == "Adam"


def test_observed_values_reach_the_rules(result):
    # the mean of the observed batch losses since the previous flush is the interval's training loss
    assert len(result["observed"]) == 3
    assert result["observed"] == pytest.approx(result["observed_loss"], rel=1e-4)


def test_recurrent_layers_train_with_gradient_statistics(result):
    run = result["recurrent"]
    assert run["findings"] == [] and run["off"] == []
    assert run["activations"] == ["hidden"]  # the Dense layer after the RNNs is still watched
    for kind in ("lstm", "gru", "simple_rnn", "conv_lstm1d", "bidirectional_lstm"):
        assert run[kind] == {"recurrent_kernel": True, "grad_stats": True}, kind


def test_a_failing_part_is_switched_off_and_training_is_unchanged(result):
    in_step, function = result["failopen"]["in_step"], result["failopen"]["train_function"]
    assert in_step == {"equal": True, "off": ["statistics in the train step"], "clean": True}
    # the model's own train function trained the batch the failing one could not
    assert function == {"equal": True, "off": ["instrumented train function"], "clean": True}


def test_rollback_restores_the_kept_state(result):
    run = result["rollback"]
    assert run["findings"] == [["nonfinite", 30, None], ["rollback", 30, 20]]
    assert run["finite"] and run["loss"] < 1.2  # a model that trained on; NaN weights give a NaN loss


@pytest.mark.parametrize("path", ["spike", "spike_device"])
def test_loss_spike_fires_and_skip_step_leaves_the_update_out(result, path):
    from test_keras_spike import check_spike

    check_spike(result[path])


def test_reduce_lr_lowers_the_rate_the_next_steps_train_at(result):
    from test_keras_spike import check_reduce_lr

    check_reduce_lr(result["reduce_lr"])
