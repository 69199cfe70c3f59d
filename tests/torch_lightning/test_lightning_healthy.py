"""Healthy MLP, CNN and transformer runs: the default config (config=None) stays silent.

Each run also checks that silence is not for lack of data: every statistic the default rule
set needs reached the rules at least once.
"""

import itertools
from pathlib import Path

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from lightning_kit import CNN, Task, TinyTransformer, blobs, fit, images, loader, mlp, task_class, tokens, tripwire

pytestmark = pytest.mark.torch


def watched(**kwargs):
    """A default-config callback that keeps every sample it evaluates."""
    cb = tripwire(None, **kwargs)
    cb.samples = []
    process = cb.monitor.process

    def keep(sample):
        cb.samples.append(sample)
        return process(sample)

    cb.monitor.process = keep
    return cb


@pytest.mark.parametrize("kind, package", [("mlp", "lightning"), ("cnn", "lightning"), ("transformer", "lightning"),
                                           ("mlp", "pytorch_lightning")])
def test_healthy_run_is_silent(kind, package, tmp_path):
    torch.manual_seed(0)
    if kind == "mlp":
        task, train, val = task_class(package)(mlp()), blobs(n=4096, spread=2.0), blobs(n=384, seed=1, spread=2.0)
    elif kind == "cnn":
        task, train, val = Task(CNN(), lr=0.01, optimizer="adam"), images(n=4096), images(n=384, seed=1)
    else:
        task, train, val = (Task(TinyTransformer(), lr=0.003, optimizer="adam"), tokens(n=4096),
                            tokens(n=384, seed=1))
    cb = watched(log_dir=tmp_path)
    fit(task, loader(*train), loader(*val, shuffle=False), callback=cb, max_steps=120, val_check_interval=40)
    assert cb.findings == [], [str(f) for f in cb.findings]
    seen = {key for s in cb.samples for key in s.stats}
    # float inputs give input_*, token ids give token_*; these models have ReLUs but no tanh/sigmoid
    not_applicable = ({"token_count[token=0]", "token_total"} if kind != "transformer" else
                      {"input_count", "input_sum", "input_sumsq", "input_min", "input_max"})
    not_applicable |= {n.key for n in cb.monitor.needs() if n.stat in ("act_tanh_sat_frac", "act_sigmoid_sat_frac")}
    needs = {n.key for n in cb.monitor.needs()}
    assert needs - not_applicable <= seen, sorted(needs - not_applicable - seen)
    # the default overhead budget samples every 10 steps until it has measured three samples, then as
    # seldom as its measured cost on these fast CPU steps asks (never more than 100 steps apart)
    trained = [s.step for s in cb.samples if "grad_norm" in s.stats]
    gaps = [later - earlier for earlier, later in itertools.pairwise(trained)]
    assert trained[:3] == [0, 10, 20] and 4 <= len(trained) <= 12 and max(gaps) <= 100
    assert Path(cb.monitor.record_path).is_file() and Path(cb.monitor.record_path).is_relative_to(tmp_path)


class CosineToZero(Task):
    """The task with the LR annealed to 0 over the run, stepped every batch (a common recipe)."""

    def __init__(self, *args, total_steps: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.total_steps = total_steps

    def configure_optimizers(self):
        opt = super().configure_optimizers()
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.total_steps, eta_min=0.0)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def test_a_long_run_that_converges_under_a_cosine_schedule_is_silent():
    """2000 steps on an easy problem: the loss falls below 1% of its first value, then single
    batches lift the gradient norm 10-30x above its tiny median and the annealed LR makes the
    updates tiny; none of that is a fault (it fired exploding_gradient and small_updates before
    the rules learned that a converged model is at rest)."""
    torch.manual_seed(0)
    steps = 2000
    cb = watched()
    fit(CosineToZero(mlp(), total_steps=steps), loader(*blobs()), callback=cb, max_steps=steps)
    losses = [s.scalar("loss") for s in cb.samples if s.scalar("loss") is not None]
    assert losses[-1] < 0.01 * losses[0]  # it did converge: the situation this test is about
    assert cb.findings == [], [str(f) for f in cb.findings]


def test_a_plateaued_run_whose_schedule_anneals_to_zero_is_silent():
    """Overlapping classes: the loss plateaus far above 1% of its first value, so only the
    annealed learning rate tells the rules that the tiny final updates are on purpose (Adam's
    update ratios dropped below 1e-6 in the last ~60 of 3000 steps and fired small_updates). Sampled
    every 10 steps, so that those last steps are seen (the default budget samples them more seldom)."""
    torch.manual_seed(0)
    steps = 3000
    cb = watched(interval=10)
    fit(CosineToZero(mlp(), lr=1e-3, optimizer="adam", total_steps=steps), loader(*blobs(spread=4.0)),
        callback=cb, max_steps=steps)
    lrs = [s.scalar("lr") for s in cb.samples if s.scalar("lr") is not None]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] < 1e-7  # the schedule was seen
    assert cb.findings == [], [str(f) for f in cb.findings]


class LinearWarmup(Task):
    """SGD whose learning rate climbs linearly from 0 over 10000 steps."""

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 10000))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def test_the_first_steps_of_a_long_warmup_are_silent():
    """At steps 0-20 the rate is 0..2e-7 and the update ratios stay below 1e-6: small on purpose
    (this fired small_updates at step 20 before the rules read a rising rate as a warm-up)."""
    torch.manual_seed(0)
    cb = watched()
    fit(LinearWarmup(mlp(), lr=1e-3), loader(*blobs()), callback=cb, max_steps=60)
    ratios = [min(s.stats["update_ratio"].values()) for s in cb.samples if "update_ratio" in s.stats]
    assert max(ratios[:3]) < 1e-6  # steps 0, 10, 20: the situation this test is about
    assert cb.findings == [], [str(f) for f in cb.findings]
