"""`loss_spike` and `skip_step` in Keras `fit`: a batch whose inputs are x1000 at step 100 (a corrupt
record) is a spike of the loss and of the global gradient norm; `loss_spike` fires at that step, and
with `skip_step` its update is left out, so the run ends where the same run without that batch
ends, while without it the run is visibly damaged. The judgement is that of the torch adapters
(`HostSpikeSeries`) on the same series."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_kit import classification, fit, mlp
from tripwire import KerasTripwire
from tripwire.callbacks.keras.buffer import to_numpy
from tripwire.stats import Need

pytestmark = pytest.mark.keras

POISONED = 100  # the optimizer step (0-based) whose batch is corrupt
BATCH, STEPS = 32, 120


def spike_config(*actions: str) -> dict:
    return {"rules": {"loss_spike": {"actions": ["alert", *actions]}}}


class Snapshots(keras.callbacks.Callback):
    """The weights and the optimizer's variables (iteration count, Adam's moments) after the steps
    just before and at the poisoned one (on JAX tripwire's own variables are optimizer variables
    during ``fit``: left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[int, list[np.ndarray]] = {}

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        if batch in (POISONED - 1, POISONED):
            model = self.model
            own = [v for v in model.optimizer.variables if not v.name.startswith("tripwire")]
            self.kept[batch] = [to_numpy(v) for v in [*model.weights, *own]]


def _run(x, y, config, callbacks=()) -> tuple:
    model = mlp(head=None)  # logits: a loss with no cap, whose gradient does not vanish on a saturated batch
    tw, rec, _ = fit(model, x, y, config=config, interval=10, epochs=1, batch_size=BATCH, shuffle=False,
                     optimizer=keras.optimizers.Adam(1e-2), callbacks=callbacks,
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model, tw, rec


def spike_report() -> dict:
    """The planted spike on this process's backend, as JSON-safe values (the JAX and torch backend
    scripts report it; ``test_keras_jax_backend`` and ``test_keras_torch_backend`` check it): the
    findings with and without ``skip_step``, the final losses of both and of the run without the
    poisoned batch (which is also the healthy run), and whether the skipped step left the weights
    and the optimizer as they were."""
    x, y = classification(n=BATCH * STEPS)
    poisoned = x.copy()
    poisoned[POISONED * BATCH:(POISONED + 1) * BATCH] *= 1000
    keep = np.r_[0:POISONED * BATCH, (POISONED + 1) * BATCH:len(x)]

    def findings(tw) -> list:
        return [[f.kind, f.step, f.evidence.get("steps_skipped")] for f in tw.findings]

    damaged, alerted, _ = _run(poisoned, y, spike_config())
    snapshots = Snapshots()
    skipped, skipping, _ = _run(poisoned, y, spike_config("skip_step"), callbacks=[snapshots])
    clean, healthy, rec = _run(x[keep], y[keep], spike_config())
    before, after = snapshots.kept[POISONED - 1], snapshots.kept[POISONED]
    judged = [v for s in rec.samples for k, v in s.stats.items() if k.startswith("spike_max_z")]
    return {"alerted": findings(alerted), "skipping": findings(skipping), "healthy": findings(healthy),
            "healthy_judged": len(judged),
            "unchanged_by_skip": all(np.array_equal(a, b) for a, b in zip(before, after)),
            "iterations": int(to_numpy(skipped.optimizer.iterations)),
            **{f"loss_{name}": float(model.evaluate(x, y, batch_size=256, verbose=0))
               for name, model in (("damaged", damaged), ("skipped", skipped), ("clean", clean))}}


def check_spike(run: dict) -> None:
    """What :func:`spike_report` must show on every backend: fired at the poisoned step, the run
    damaged without ``skip_step`` and, with it, ended as without the batch, weights and optimizer
    untouched by the skipped step; the healthy run silent though judged."""
    assert run["alerted"] == [["loss_spike", POISONED, None]] and run["loss_damaged"] > 3 * run["loss_clean"]
    assert [kind for kind, *_ in run["skipping"]] == ["loss_spike", "skip_step_effect"]
    assert run["unchanged_by_skip"] and run["iterations"] == STEPS - 1
    assert run["loss_skipped"] == pytest.approx(run["loss_clean"], rel=0.03)
    assert run["healthy"] == [] and run["healthy_judged"] > 0


@pytest.fixture(scope="module")
def report() -> dict:
    return spike_report()


def test_the_spike_fires_at_its_step(report):
    assert report["alerted"] == [["loss_spike", POISONED, None]]


def test_without_skip_step_the_run_is_damaged(report):
    assert report["loss_damaged"] > 3 * report["loss_clean"]


def test_skip_step_leaves_the_update_out_and_the_run_ends_as_without_the_batch(report):
    (kind, step, skipped), (effect, *_) = report["skipping"]
    assert (kind, step, skipped, effect) == ("loss_spike", POISONED, 1.0, "skip_step_effect")
    assert report["loss_skipped"] == pytest.approx(report["loss_clean"], rel=0.03)


def test_the_skipped_step_leaves_the_weights_and_the_optimizer_as_they_were(report):
    assert report["unchanged_by_skip"]
    assert report["iterations"] == STEPS - 1


def test_a_healthy_run_is_silent(report):
    assert report["healthy"] == []
    assert report["healthy_judged"] > 0  # judged after the warm-up, not merely quiet


def test_the_judgement_matches_the_host_series_of_the_torch_adapters():
    """The compiled judgement and `HostSpikeSeries` on one heavy-tailed series with spikes, a zero,
    a NaN and a level shift: the same verdicts, counts and largest z."""
    pytest.importorskip("torch")
    import tensorflow as tf

    from tripwire.callbacks.keras.spike import KerasSpikes
    from tripwire.callbacks.torch.spike import HostSpikeSeries

    rng = np.random.default_rng(3)
    values = np.exp(rng.standard_t(3, size=400) * 0.3).astype("float32")
    values[[90, 91]] *= np.float32(60.0)
    values[[200, 333]] *= np.float32(1000.0)
    values[150], values[151] = 0.0, np.nan
    values[250:] *= np.float32(8.0)  # a new level: the history follows it
    history = (("series", "loss"), ("warmup", 16), ("window", 32))
    needs = [Need("spike_count", history), Need("spike_max_z", history), Need("spike_last_step", history)]
    spikes = KerasSpikes(needs)
    judge = tf.function(lambda v: spikes.judge(v, None))
    host = HostSpikeSeries(window=32, warmup=16, limit=6.0)
    ours, theirs = [], []
    for step, v in enumerate(values):
        ours.append(bool(judge(tf.constant(v))))
        theirs.append(host.judge(float(v), step))
    assert ours == theirs
    assert {90, 91, 200, 250, 333} <= {i for i, spiked in enumerate(ours) if spiked}
    count, max_z, last = host.take().tolist()
    got = {key.split("[")[0]: value[None] for key, value in spikes.read().items()}
    assert got == {"spike_count": count, "spike_max_z": pytest.approx(max_z, rel=1e-4), "spike_last_step": last}
    assert spikes.read() == {needs[0].key: {None: 0.0}}  # read, and started again


def test_under_xla_the_spike_is_judged_and_skipped_too():
    x, y = classification(n=BATCH * 60)
    x[40 * BATCH:41 * BATCH] *= 1000
    config = {"rules": {"loss_spike": {"warmup": 16, "window": 32, "actions": ["alert", "skip_step"]}}}
    model = mlp(head=None)
    tw, _, _ = fit(model, x, y, config=config, interval=10, epochs=1, batch_size=BATCH, shuffle=False,
                   optimizer=keras.optimizers.Adam(1e-2), compile_kwargs={"jit_compile": True},
                   loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert [(f.kind, f.step) for f in tw.findings] == [("loss_spike", 40), ("skip_step_effect", 50)]
    assert int(to_numpy(model.optimizer.iterations)) == 59 and not tw.monitor.guard.disabled


def test_a_resumed_run_judges_against_the_saved_history():
    """80 clean steps, then a new callback (and a resumed fit) over 40 more with the corrupt batch at
    step 100: the warm-up (64 steps) is longer than the second fit, so only the saved history of the
    first 80 can judge it."""
    import json

    x, y = classification(n=BATCH * STEPS)
    x[POISONED * BATCH:(POISONED + 1) * BATCH] *= 1000
    first, second = slice(0, 80 * BATCH), slice(80 * BATCH, STEPS * BATCH)
    model, tw, _ = _run(x[first], y[first], spike_config())
    state = json.loads(json.dumps(tw.state_dict()))  # plain JSON, beside the checkpoint
    assert [len(history["ring"]) for history in state["spikes"].values()] == [128, 128]
    again = KerasTripwire(spike_config(), interval=10, log_dir=False)
    again.load_state_dict(state)
    model.fit(x[second], y[second], batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[again])
    assert [(f.kind, f.step) for f in again.findings] == [("loss_spike", POISONED)]


def test_every_sample_keeps_its_statistics_across_a_skipped_update():
    """The skipped update leaves the optimizer's step count behind; the samples' stamps count every
    step, so at ``interval: 1`` the step after the skipped one still brings its own statistics."""
    x, y = classification(n=BATCH * STEPS)
    x[POISONED * BATCH:(POISONED + 1) * BATCH] *= 1000
    config = {"rules": {"loss_spike": {"actions": ["alert", "skip_step"]}, "dead_relu": {}, "vanishing_gradient": {}}}
    model = mlp(head=None)
    tw, rec, _ = fit(model, x, y, config=config, interval=1, epochs=1, batch_size=BATCH, shuffle=False,
                     optimizer=keras.optimizers.Adam(1e-2),
                     loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert [(f.kind, f.step) for f in tw.findings] == [("loss_spike", POISONED), ("skip_step_effect", POISONED + 1)]
    for stat in ("grad_norm", "act_dead_frac"):
        assert sorted({s.step for s in rec.samples if any(k.split("[")[0] == stat for k in s.stats)}) == \
            list(range(STEPS)), stat


class Rates(keras.callbacks.Callback):
    """The optimizer's learning rate after every step (read on the host: a test's price)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[float] = []

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.seen.append(float(to_numpy(self.model.optimizer.learning_rate)))


def reduce_lr_report() -> dict:
    """``reduce_lr`` (factor 0.1) on the planted spike of this process's backend (the JAX backend
    script reports it too; on JAX the rate lives in the trainer's state): the findings, and the
    rate before and after each step. Tripwire's callback comes after ``Rates``, so a step's reading
    is taken before that step's decision."""
    x, y = classification(n=BATCH * STEPS)
    x[POISONED * BATCH:(POISONED + 1) * BATCH] *= 1000
    rates = Rates()
    config = {"rules": {"loss_spike": {"actions": ["alert", {"reduce_lr": {"factor": 0.1, "min_lr": 1e-4}}]}}}
    _, tw, _ = _run(x, y, config, callbacks=[rates])
    return {"findings": [[f.kind, f.step, f.evidence.get("lr_before"), f.evidence.get("lr_after")]
                         for f in tw.findings], "rates": rates.seen}


def check_reduce_lr(report: dict) -> None:
    """What :func:`reduce_lr_report` must show on every backend: the spike lowers the rate at once,
    the later steps train at the lowered rate, and the effect is reported at the next sample."""
    (spike, *_), (kind, step, before, after), (effect, *_) = report["findings"]
    assert (spike, kind, step, effect) == ("loss_spike", "reduce_lr", POISONED, "reduce_lr_effect")
    assert before == pytest.approx(1e-2) and after == pytest.approx(1e-3)
    rates = report["rates"]
    assert rates[:POISONED + 1] == [pytest.approx(1e-2)] * (POISONED + 1)
    assert rates[POISONED + 1:] == [pytest.approx(1e-3)] * (STEPS - POISONED - 1)


def test_reduce_lr_lowers_the_rate_the_next_steps_train_at():
    check_reduce_lr(reduce_lr_report())


def test_reduce_lr_of_a_learning_rate_schedule_is_refused_when_training_starts():
    """A ``LearningRateSchedule`` is compiled into the train step: nothing outside it can be scaled."""
    from tripwire import ConfigError

    x, y = classification(n=BATCH * 4)
    model = mlp(head=None)
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=100)
    with pytest.raises(ConfigError, match=r"cannot carry out reduce_lr here: its learning rate is a CosineDecay"):
        fit(model, x, y, config=spike_config("reduce_lr"), optimizer=keras.optimizers.Adam(schedule), epochs=1)
    from tripwire.callbacks.keras.optimizer import TripwireApply

    assert not isinstance(model.optimizer, TripwireApply)  # refused before anything was hooked
