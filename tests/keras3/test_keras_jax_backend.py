"""`KerasTripwire` on the JAX backend of Keras 3 (subprocess: the backend is fixed at import)."""

import pytest

from script_kit import script_result

pytestmark = pytest.mark.keras
pytest.importorskip("keras")
pytest.importorskip("jax")


@pytest.fixture(scope="module")
def result():
    return script_result("jax_backend_script.py")


def test_runs_on_jax(result):
    assert result["backend"] == "jax"


def test_gradients_equal_jax_grad(result):
    assert result["sampled"] == [0]
    assert result["grad_norm"] == pytest.approx(result["grad_norm_reference"], rel=1e-4)


def test_weights_and_update_ratios_are_taken_after_the_update(result):
    assert result["weight_var"] == pytest.approx(result["weight_var_reference"], rel=1e-4)
    assert result["update_ratio"] == pytest.approx(result["update_ratio_reference"], rel=1e-4)


def test_activation_statistics_match_numpy(result):
    assert result["dead"] == pytest.approx(result["dead_reference"])
    assert 0 < result["dead_reference"][0] < 1  # a non-trivial mix of dead and live units


def test_only_interval_steps_are_sampled_and_the_state_is_read_without_a_sync(result):
    # 2 epochs of 32 micro-batches, 2 per optimizer step: 32 steps, sampled every 5 from the first
    assert result["accumulated_steps"] == [0, 5, 10, 15, 20, 25, 30]
    assert result["unsynced_syncs"] == 2  # fit's own, once per epoch
    # the learning rate the sampled step applied, as Keras computes it: the schedule at the optimizer's
    # iteration count, which under gradient accumulation (2 here) counts micro-batches (step S updates
    # at its second, count 2S + 1); fresh, although nothing synced
    assert [step for step, _ in result["lr"]][:-1] == result["accumulated_steps"]  # + the final flush
    for step, lr in result["lr"][:-1]:
        assert lr == pytest.approx(1e-3 * 0.99 ** (2 * step + 1), rel=1e-4), step


def test_planted_faults_fire(result):
    assert result["vanishing_subject"].startswith("net/hidden0/kernel")
    assert result["dead_relu_subject"].startswith("hidden0")
    assert result["nan_stopped_by"] == "nonfinite" and result["nan_epochs"] == 1


def test_checkpoint_action_saves_the_model_during_training(result):
    # saved at the finding (step 2, mid-epoch: the values were in the trainer's state), with the
    # user's Adam variables only (2 + 2 per weight of the 3-layer MLP)
    assert result["checkpoint_action"] == [["tripwire-dead_relu-step2.keras"], 14]
    assert result["checkpoint_trained"]  # the weights after 3 steps (the head's bias starts at 0)


def test_healthy_run_is_silent_and_checkpoints_load(result):
    assert result["healthy_findings"] == []
    assert {"grad_norm", "update_ratio", "act_dead_frac", "label_count", "input_sum", "confusion", "val_loss"} <= \
        set(result["healthy_keys"])
    assert result["clean_after"]
    # saved during training: the user's optimizer, with its own variables only (2 + 2 per weight for Adam)
    assert result["checkpoint_optimizer"] == ["Adam", 14]


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


def test_rollback_restores_the_kept_state_through_the_trainer_state(result):
    run = result["rollback"]
    assert run["findings"] == [["nonfinite", 30, None], ["rollback", 30, 20]]
    assert run["finite"] and run["loss"] < 1.2  # a model that trained on; NaN weights give a NaN loss


def test_loss_spike_fires_and_skip_step_leaves_the_update_out_of_the_trainer_state(result):
    from test_keras_spike import check_spike

    check_spike(result["spike"])


def test_reduce_lr_lowers_the_rate_the_next_steps_train_at(result):
    from test_keras_spike import check_reduce_lr

    check_reduce_lr(result["reduce_lr"])
