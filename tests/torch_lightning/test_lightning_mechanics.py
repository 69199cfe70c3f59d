"""How LightningTripwire hooks into Lightning: schedule, accumulation, clipping, AMP, manual
optimization, actions, checkpoints, loggers, user statistics, hook removal."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

import lightning.pytorch as pl
from torch import nn

import tripwire as tw
from lightning_kit import PACKAGES, Task, blobs, fit, loader, mlp, rules_fired, task_class, trainer, tripwire

pytestmark = pytest.mark.torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def data():
    return blobs(n=256, spread=2.0)


def keep_samples(cb):
    cb.samples = []
    process = cb.monitor.process

    def keep(sample):
        cb.samples.append(sample)
        return process(sample)

    cb.monitor.process = keep
    return cb


def test_sampled_steps_accumulation_and_pre_clip_gradients(data):
    rules = {"exploding_gradient": {}, "class_imbalance": {}, "loss_not_decreasing": {}}
    cb = keep_samples(tripwire({"rules": rules}, interval=2))
    fit(Task(mlp(), lr=0.5), loader(*data, batch_size=16), callback=cb, max_steps=6, accumulate_grad_batches=2,
        gradient_clip_val=1e-4)
    grads = [s for s in cb.samples if "grad_global_norm" in s.stats]
    assert [s.step for s in grads] == [0, 2, 4]  # once per real optimizer step, sampled ones only
    assert all(s.scalar("grad_global_norm") > 100 * 1e-4 for s in grads)  # taken before clipping
    assert all(sum(s.stats["label_count"].values()) == 32 for s in grads)  # both micro-batches counted
    losses = [s.scalar("loss") for s in grads]
    assert all(0.2 < v < 5 for v in losses)  # undivided by accumulate_grad_batches


class TwoOptimizers(pl.LightningModule):
    """Manual optimization with one optimizer per sub-network."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.a, self.b = mlp(), mlp()

    def training_step(self, batch, batch_idx):
        x, y = batch
        for net, opt in zip((self.a, self.b), self.optimizers()):
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        return {"loss": loss.detach()}

    def configure_optimizers(self):
        return torch.optim.SGD(self.a.parameters(), lr=0.1), torch.optim.SGD(self.b.parameters(), lr=0.1)


def test_manual_optimization_with_two_optimizers(data):
    cb = keep_samples(tripwire({"rules": {"vanishing_gradient": {}, "small_updates": {}}}, interval=2))
    fit(TwoOptimizers(), loader(*data), callback=cb, max_steps=8)
    grads = [s for s in cb.samples if "grad_norm" in s.stats]
    assert grads and all({"a.0.weight", "b.0.weight"} <= set(s.stats["grad_norm"]) for s in grads)
    assert all(s.stats["update_ratio"]["b.0.weight"] > 0 for s in grads)


class AlternatingOptimizers(TwoOptimizers):
    """WGAN-style schedule: sub-network ``b`` steps on every 5th batch only, ``a`` on the others."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        net, opt = (self.b, self.optimizers()[1]) if batch_idx % 5 == 4 else (self.a, self.optimizers()[0])
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        return {"loss": loss.detach()}


def test_parameters_whose_optimizer_did_not_step_get_no_update_ratio(data):
    # sampled batches (global step % 2 == 0) mostly step `a` only: `b` not moving there is intended
    cb = keep_samples(tripwire({"rules": {"small_updates": {"patience": 2}}}, interval=2))
    fit(AlternatingOptimizers(), loader(*data), callback=cb, max_steps=30)
    ratios = [s.stats["update_ratio"] for s in cb.samples if "update_ratio" in s.stats]
    assert len(ratios) >= 10 and all(r["a.0.weight"] > 1e-6 for r in ratios if "a.0.weight" in r)
    assert any("b.0.weight" in r for r in ratios)  # reported on the sampled batches where `b` steps
    assert all(r.get("b.0.weight", 1.0) > 1e-6 for r in ratios)
    assert not any(("a.0.weight" in r) == ("b.0.weight" in r) for r in ratios)  # one network per batch
    assert cb.findings == []


def test_fp16_amp_gradients_are_unscaled(data):
    from lightning.pytorch.plugins.precision import MixedPrecision

    def norms(plugins):
        torch.manual_seed(0)
        cb = keep_samples(tripwire({"rules": {"exploding_gradient": {}, "nonfinite": {}}}, interval=1))
        fit(Task(mlp()), loader(*data, shuffle=False), callback=cb, max_steps=3, plugins=plugins)
        return [s.scalar("grad_global_norm") for s in cb.samples if "grad_global_norm" in s.stats], cb

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    amp, cb = norms([MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    fp32, _ = norms([])
    assert amp[0] == pytest.approx(fp32[0], rel=0.05)  # not 65536x: read after unscale_
    assert all(s.scalar("amp_skipped") == 0.0 for s in cb.samples if "grad_global_norm" in s.stats)


def test_fp16_loss_scale_skip_steps_are_not_nan_findings(data):
    from lightning.pytorch.plugins.precision import MixedPrecision

    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 40)  # overflows until the scaler backs off
    cb = keep_samples(tripwire({"rules": {"nonfinite": {}}}, interval=1))
    fit(Task(mlp()), loader(*data), callback=cb, max_steps=4,
        plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)])
    skipped = [s for s in cb.samples if s.scalar("amp_skipped") == 1.0]
    assert skipped and all(s.scalar("grad_nonfinite") == 1.0 for s in skipped)
    assert cb.findings == [] and cb.stopped_by is None


def test_raise_action_raises_rule_triggered(data):
    cb = tripwire({"rules": {"nonfinite": {"actions": ["raise"]}}}, interval=1)
    x = data[0].clone()
    x[:] = float("nan")
    with pytest.raises(tw.RuleTriggered) as info:
        fit(Task(mlp()), loader(x, data[1]), callback=cb, max_steps=5)
    assert info.value.finding.rule == "nonfinite"
    end = cb.monitor.end
    assert (end.state, end.rule, end.error) == ("stopped", "nonfinite", "RuleTriggered")


class CrashingTask(Task):
    def training_step(self, batch, batch_idx):
        if batch_idx == 3:
            raise ValueError("a bad batch")
        return super().training_step(batch, batch_idx)


def test_an_exception_leaving_fit_is_recorded_as_a_crash(data, tmp_path):
    cb = tripwire({"rules": {"nonfinite": {}}}, interval=2, log_dir=tmp_path, run_name="run")
    with pytest.raises(ValueError, match="a bad batch"):
        fit(CrashingTask(mlp()), loader(*data), callback=cb, max_steps=10)
    with tw.record.Run(tmp_path / "run") as run:
        assert (run.end.state, run.end.step, run.end.error) == ("crashed", 2, "ValueError")


def test_a_fit_that_ends_normally_is_recorded_as_finished(data, tmp_path):
    cb = tripwire({"rules": {"nonfinite": {}}}, interval=2, log_dir=tmp_path, run_name="run")
    fit(Task(mlp()), loader(*data), callback=cb, max_steps=5)
    with tw.record.Run(tmp_path / "run") as run:
        assert (run.end.state, run.end.step) == ("finished", 4)


@pytest.mark.parametrize("package", PACKAGES)
def test_checkpoint_action_saves_a_loadable_checkpoint(data, tmp_path, package):
    cb = tripwire({"rules": {"nonfinite": {"actions": ["checkpoint", "stop"]}}}, interval=1)
    x = data[0].clone()
    x[64:] = float("nan")
    fit(task_class(package)(mlp()), loader(x, data[1], shuffle=False), callback=cb, max_steps=10,
        default_root_dir=tmp_path)
    saved = sorted((tmp_path / "tripwire_checkpoints").glob("*.ckpt"))  # no run record: under default_root_dir
    assert [p.name for p in saved] == ["tripwire-nonfinite-step2.ckpt"]
    ckpt = torch.load(saved[0], weights_only=True)
    assert ckpt["callbacks"]["LightningTripwire"]["monitor"]["findings"][0]["rule"] == "nonfinite"


@pytest.mark.parametrize("package", PACKAGES)
def test_resume_continues_patience_and_keeps_findings(data, tmp_path, package):
    config = {"rules": {"small_updates": {"patience": 3}, "poor_initialization": {}}}
    net = mlp()
    nn.init.constant_(net[0].weight, 0.1)  # poor_initialization fires at step 0 of the first run
    first = tripwire(config, interval=5)
    tr = trainer([first], max_steps=6, package=package)
    tr.fit(task_class(package)(net, lr=1e-9), loader(*data))
    path = tmp_path / "mid.ckpt"
    tr.save_checkpoint(path)
    assert rules_fired(first) == {"poor_initialization"}  # small_updates: 2 of 3 samples so far
    state = torch.load(path, weights_only=True)["callbacks"]["LightningTripwire"]
    assert state["monitor"]["rules"]["small_updates"]["state"]["runs"]

    second = tripwire(config, interval=5)
    trainer([second], max_steps=15, package=package).fit(task_class(package)(mlp(), lr=1e-9), loader(*data),
                                                         ckpt_path=path)
    assert [f.rule for f in second.findings].count("poor_initialization") == 1  # restored, not re-fired
    small = [f for f in second.findings if f.rule == "small_updates"]
    assert small and small[0].step == 10  # third sample in a row: steps 0, 5 (first run) and 10


def test_statistics_are_logged_to_the_trainers_loggers(data, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    cb = tripwire({"rules": {"exploding_gradient": {}}}, interval=5)
    fit(Task(mlp()), loader(*data), callback=cb, max_steps=10, logger=CSVLogger(tmp_path, name="run"))
    header = next(tmp_path.rglob("metrics.csv")).read_text().splitlines()[0]
    assert "tripwire/grad_global_norm" in header.split(",")


class Observing(Task):
    """Reports a statistic of its own and returns predictions from validation_step."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        probs = logits.softmax(-1)
        tw.observe("entropy", -(probs * probs.clamp_min(1e-9).log()).sum(-1).mean())
        return nn.functional.cross_entropy(logits, y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        preds = self.net(x)  # not self(x): the forward hook does not see it
        self.log("val_loss", nn.functional.cross_entropy(preds, y))
        return {"preds": preds, "target": y}


def test_user_statistics_and_predictions_returned_by_validation_step(data):
    cb = keep_samples(tripwire({"rules": {"classifier_confusion": {}}}, interval=5))
    fit(Observing(mlp()), loader(*data), loader(*data, shuffle=False), callback=cb, max_steps=10,
        val_check_interval=8)
    entropy = [s.scalar("user/entropy") for s in cb.samples if "user/entropy" in s.stats]
    assert len(entropy) == 2 and all(0 < v < 1.1 for v in entropy)  # ln(3) = 1.099 at most
    confusion = [s.stats["confusion"] for s in cb.samples if "confusion" in s.stats]
    assert len(confusion) == 1 and sum(confusion[0].values()) == 256


def test_hooks_are_removed_after_fit(data):
    net = mlp()
    cb = tripwire({"rules": {"dead_relu": {}}})
    fit(Task(net), loader(*data), callback=cb, max_steps=2)
    assert not any(m._forward_hooks for m in net.modules())


def test_validation_outside_fit_is_ignored(data):
    cb = tripwire({"rules": {"overfit": {}}})
    trainer([cb]).validate(Task(mlp()), loader(*data, shuffle=False))
    assert cb.findings == []
