"""The plain PyTorch loop, with real training: silent when healthy, planted faults caught and the
loop stopped at the step the schedule says."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn

from loop_kit import batches, blobs, mlp, quiet, train
from tripwire import RuleTriggered

pytestmark = pytest.mark.torch


def watched(tw):
    """Keep every sample the Tripwire evaluates in ``tw.samples``."""
    tw.samples, process = [], tw.monitor.process
    tw.monitor.process = lambda sample: (tw.samples.append(sample), process(sample))[1]
    return tw


def test_healthy_run_is_silent_with_the_defaults_and_every_statistic_arrives(tmp_path):
    torch.manual_seed(0)
    model, (x, y), (vx, vy) = mlp(), blobs(n=2048), blobs(n=256, seed=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tw = watched(quiet(model, optimizer, None, log_dir=tmp_path))
    data = batches(x, y)
    for _ in range(3):
        train(tw, model, optimizer, data, steps=40)
        with torch.no_grad():
            logits = model(vx)
        tw.validation(logits, vy, loss=nn.functional.cross_entropy(logits, vy))
    tw.close()
    assert tw.findings == [] and not tw.should_stop, [str(f) for f in tw.findings]
    assert tw.steps == 120
    seen = {key for s in tw.samples for key in s.stats}
    not_applicable = {"token_count[token=0]", "token_total"}  # float inputs; ReLUs, no tanh/sigmoid
    not_applicable.add("epochs_since_val")  # a plain loop has no epoch length: its absence reads as one epoch
    not_applicable |= {n.key for n in tw.monitor.needs() if n.stat in ("act_tanh_sat_frac", "act_sigmoid_sat_frac")}
    needs = {n.key for n in tw.monitor.needs()}
    assert needs - not_applicable <= seen, sorted(needs - not_applicable - seen)
    trained = sorted(s.step for s in tw.samples if "grad_norm" in s.stats)
    assert trained[:3] == [0, 10, 20] and set(trained) <= tw.monitor.sampled_steps  # the budget's schedule
    assert tw.monitor.record_path.startswith(str(tmp_path))


def test_under_the_default_budget_the_labels_of_every_tenth_step_are_counted():
    """The budget samples this fast CPU step far more seldom than every 10 steps, but the label
    counts (``class_imbalance`` waits for 500 labels) still come from every 10th step's batch, as
    with ``interval: 10``: a short run is judged as soon as it was before the budget."""
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs(n=2048)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tw = watched(quiet(model, optimizer, None))
    train(tw, model, optimizer, batches(x, y, batch_size=16), steps=400)
    tw.close()
    trained = sorted(s.step for s in tw.samples if "grad_norm" in s.stats)
    assert trained[:3] == [0, 10, 20] and tw.monitor.interval > 10  # the budget took over
    counted = sum(sum(s.stats["label_count"].values()) for s in tw.samples if "label_count" in s.stats)
    # the batches of every 10th step and of every sampled one, up to the last sample
    assert counted == 16 * len(set(range(0, trained[-1] + 1, 10)) | set(trained))


@pytest.mark.parametrize("onset", [0, 13, 20])
def test_nan_inputs_stop_the_loop_at_the_first_sampled_step(onset):
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tw = quiet(model, optimizer, {"interval": 5})
    poisoned = lambda step, batch: batch * float("nan") if step >= onset else batch
    stopped_at = train(tw, model, optimizer, batches(x, y), steps=60, fault=poisoned)
    tw.close()
    expected = -(-onset // 5) * 5  # the first sampled step at or after the onset
    assert stopped_at == expected and tw.should_stop
    assert tw.stopped_by.rule == "nonfinite" and tw.stopped_by.step == expected


def test_an_exploding_learning_rate_is_stopped():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 2.0 ** step)  # doubles every step
    tw = quiet(model, optimizer)  # the default rule set
    data = batches(x, y)
    for _ in range(200):
        xb, yb = next(data)
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if tw.step(loss, inputs=xb, labels=yb):
            break
    tw.close()
    assert tw.should_stop and tw.stopped_by.rule == "nonfinite" and tw.steps < 100


def test_dead_relu_layer_is_found_and_stops_training():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    with torch.no_grad():
        model[2].bias.fill_(-20.0)  # the second hidden layer never activates
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tw = quiet(model, optimizer, stop_on=["dead_relu"])
    stopped_at = train(tw, model, optimizer, batches(x, y), steps=200)
    tw.close()
    assert tw.stopped_by.rule == "dead_relu" and tw.stopped_by.subject == "3"
    assert stopped_at == tw.stopped_by.step < 200


def test_class_imbalance_comes_from_the_labels_given_to_step():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    y = torch.where(torch.rand(len(y), generator=torch.Generator().manual_seed(0)) < 0.95, 0, y)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tw = quiet(model, optimizer, {"interval": 2, "rules": {"class_imbalance": {"min_samples": 200}}},
               stop_on=["class_imbalance"])
    stopped_at = train(tw, model, optimizer, batches(x, y), steps=100)
    tw.close()
    assert tw.stopped_by.rule == "class_imbalance" and stopped_at < 20


def test_validation_feeds_overfit_and_confusion():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    config = {"interval": 5, "rules": {"overfit": {"ratio": 0.5, "patience": 2},
                                       "classifier_confusion": {"min_samples": 10}}}
    tw = quiet(model, optimizer, config)
    data = batches(x, y)
    for _ in range(3):
        train(tw, model, optimizer, data, steps=5)
        _, vy = blobs(n=60, seed=3)
        for i in range(0, 60, 20):  # batch by batch; every class is predicted as the next one
            target = vy[i:i + 20]
            tw.validation_batch((target + 1) % 3, target, loss=torch.tensor(5.0))
        tw.validation()
    tw.close()
    assert {f.rule for f in tw.findings} == {"overfit", "classifier_confusion"}


def test_raise_action_raises_and_closes():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    tw = quiet(model, optimizer, {"interval": 2, "rules": {"nonfinite": {"actions": ["raise"]}}})
    with pytest.raises(RuleTriggered) as caught:
        train(tw, model, optimizer, batches(x, y), steps=20, fault=lambda step, b: b * float("nan") if step >= 3 else b)
    assert caught.value.finding.step == 4
    assert not any(m._forward_hooks for m in model.modules()) and not optimizer._optimizer_step_pre_hooks
    assert tw.monitor.end.describe() == "stopped by rule nonfinite at step 4 (it raised RuleTriggered)"


def test_an_exception_leaving_the_with_block_is_recorded_as_a_crash(tmp_path):
    from tripwire.record import Run

    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def crash(step, batch):
        if step == 7:
            raise ValueError("a bad batch")
        return batch

    with pytest.raises(ValueError), quiet(model, optimizer, {"interval": 2}, log_dir=tmp_path, run_name="run") as tw:
        train(tw, model, optimizer, batches(x, y), steps=20, fault=crash)
    with Run(tmp_path / "run") as run:
        assert (run.end.state, run.end.step, run.end.error) == ("crashed", 6, "ValueError")
    assert not any(m._forward_hooks for m in model.modules())


def test_checkpoint_action_saves_model_optimizer_and_tripwire_state(tmp_path):
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    config = {"interval": 2, "rules": {"nonfinite": {"actions": ["checkpoint", "stop"]}}}
    tw = quiet(model, optimizer, config, log_dir=tmp_path, run_name="run")
    train(tw, model, optimizer, batches(x, y), steps=20, fault=lambda step, b: b * float("nan") if step >= 3 else b)
    tw.close()
    saved = torch.load(tmp_path / "run" / "tripwire-nonfinite-step4.pt", weights_only=True)
    assert sorted(saved) == ["model", "optimizer", "step", "tripwire"] and saved["step"] == 4
    assert saved["model"].keys() == model.state_dict().keys() and saved["optimizer"]["state"]
    assert saved["tripwire"]["monitor"]["findings"][0]["rule"] == "nonfinite"


def test_state_dict_resumes_the_schedule_and_the_rules():
    torch.manual_seed(0)
    model, (x, y) = mlp(), blobs()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    config = {"interval": 4, "rules": {"nonfinite": {}}}
    first = quiet(model, optimizer, config)
    train(first, model, optimizer, batches(x, y), steps=6)
    state = first.state_dict()
    first.close()
    second = watched(quiet(model, optimizer, config))
    second.load_state_dict(state)
    train(second, model, optimizer, batches(x, y, seed=1), steps=10)
    second.close()
    assert state["steps"] == 6 and second.steps == 16
    assert [s.step for s in second.samples] == [8, 12]  # no initial sample: the run resumed
