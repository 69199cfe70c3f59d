"""The torch collector keeps to the statistics catalogue: asked for every statistic there is, it
sends exactly those ``COLLECTED["torch"]`` claims, and each crosses ranks with its catalogue
reduction under DDP's semantics (gradients averaged before they are read, weights replicated)."""

import copy

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

import lightning.pytorch as pl
from lightning.pytorch.plugins.precision import MixedPrecision
from torch import nn
from torch.utils.data import DataLoader

import tripwire
from lightning_kit import trainer
from lightning_kit import tripwire as make_callback
from tripwire.callbacks.torch.collector import TorchCollector
from tripwire.stats import CATALOGUE, COLLECTED, USER_PREFIX, Need

pytestmark = pytest.mark.torch

CLASSES, FEATURES, VOCAB = 3, 4, 20


def every_need() -> set[Need]:
    """Every statistic of the catalogue, with its default options and (where it has options) without."""
    return {Need(stat, info.options) for stat, info in CATALOGUE.items()} | {Need(stat) for stat in CATALOGUE}


#: statistics sent only once something happened: a z-score after the warm-up (64 steps by default;
#: this test trains 6), the last spiking step only when a step spiked
ONLY_WHEN_THERE = {"spike_max_z", "spike_last_step"}


def claimed_keys(framework: str) -> set[str]:
    return {need.key for need in every_need() if need.stat in COLLECTED[framework]}


class Net(nn.Module):
    """Float features or token ids in; one activation module of each family on the way to the logits."""

    def __init__(self) -> None:
        super().__init__()
        self.proj, self.embed = nn.Linear(FEATURES, 8), nn.Embedding(VOCAB, 8)
        self.relu, self.fc1, self.leaky = nn.ReLU(), nn.Linear(8, 8), nn.LeakyReLU()
        self.fc2, self.tanh, self.fc3, self.sigmoid = nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8), nn.Sigmoid()
        self.head = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x) if x.is_floating_point() else self.embed(x).mean(1)
        h = self.leaky(self.fc1(self.relu(h)))
        return self.head(self.sigmoid(self.fc3(self.tanh(self.fc2(h)))))


def batches(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Float batches and token-id batches in turn, every class in each (in proportions that depend
    on ``seed``), 16 samples each."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        y = torch.cat([torch.arange(CLASSES), torch.randint(0, CLASSES, (13,), generator=g)])
        x = torch.randn(16, FEATURES, generator=g) * (1 + seed) if i % 2 == 0 else \
            torch.randint(0, VOCAB, (16, 5), generator=g)
        out.append((x, y))
    return out


def loader(items: list) -> DataLoader:
    """The batches as they are, in order."""
    return DataLoader(items, batch_size=None)


# ---- what the Lightning callback sends --------------------------------------------------------


class Task(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = Net()

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        tripwire.observe("batch_size", float(len(y)))
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05)


def test_the_lightning_callback_sends_exactly_the_statistics_the_catalogue_claims_for_torch(monkeypatch):
    torch.manual_seed(0)
    callback = make_callback({"rules": {}}, interval=1)
    needs = every_need()
    monkeypatch.setattr(callback.monitor, "needs", lambda: needs)  # asked for everything, trees included
    samples = []
    process = callback.monitor.process
    monkeypatch.setattr(callback.monitor, "process", lambda sample: samples.append(sample) or process(sample))
    scaler = torch.amp.GradScaler("cpu")  # fp16 AMP: the loss scaler's skips are a statistic too
    trainer([callback], max_steps=6, plugins=[MixedPrecision("16-mixed", "cpu", scaler=scaler)],
            limit_val_batches=2).fit(Task(), loader(batches(6, seed=0)), loader(batches(2, seed=1)))
    sent = {key for s in samples for key in s.stats if not key.startswith(USER_PREFIX)}
    claimed = {key for key in claimed_keys("torch") if key.split("[")[0] not in ONLY_WHEN_THERE}
    assert sent == claimed, (f"claimed but not sent: {sorted(claimed - sent)}; "
                             f"sent but not claimed: {sorted(sent - claimed)}")
    assert any(key.startswith(USER_PREFIX) for s in samples for key in s.stats)


# ---- how the statistics cross ranks ---------------------------------------------------------


class Rank:
    """One rank of a simulated 2-rank DDP run: its replica of the model, its optimizer, loss scaler
    and collector (all needs), whose gather is ``gather``."""

    def __init__(self, model: nn.Module, gather) -> None:
        self.model = model
        self.opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        self.scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
        self.collector = TorchCollector(every_need(), gather=gather)
        self.collector.attach(model)
        self.collector.allocate(torch.device("cpu"))
        self.samples = []

    def forward_backward(self, batch) -> torch.Tensor:
        self.collector.begin_batch(batch, sampled=True)
        loss = nn.functional.cross_entropy(self.model(batch[0]), batch[1])
        self.opt.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        return loss

    def step(self, loss: torch.Tensor, step: int) -> None:
        self.collector.before_optimizer_step(self.opt, self.scaler)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.collector.add_loss(loss)
        self.samples.append(self.collector.flush(step=step, epoch=0).sample())

    def validate(self, batch, step: int) -> None:
        self.collector.begin_validation_batch()
        with torch.no_grad():
            val_loss = nn.functional.cross_entropy(self.model(batch[0]), batch[1])
        self.collector.validation_batch(None, batch)
        self.samples.append(self.collector.end_validation(val_loss, step=step, epoch=0).sample())


def catalogue_reduction(stat: str, a: float, b: float) -> float:
    """What the catalogue says the run's value is, from rank 0's ``a`` and rank 1's ``b`` (a mean
    over equally many batches or calls on each rank)."""
    how = CATALOGUE[stat].reduce
    if how == "same":
        assert a == pytest.approx(b, rel=1e-6, abs=1e-12), f"{stat}: the ranks do not agree"
        return a
    return {"sum": a + b, "max": max(a, b), "min": min(a, b), "mean": (a + b) / 2}[how]


def test_every_statistic_crosses_ranks_with_its_catalogue_reduction():
    """Ranks 0 and 1 see different batches; DDP's semantics are kept by averaging their gradients
    before the collectors read them. A third collector, rank 1's twin, gathers rank 0's packed
    vector with its own: what it reads must be the catalogue's reduction of the two ranks' own."""
    torch.manual_seed(0)
    sent_by_rank0: list[torch.Tensor] = []
    model = Net()
    replicas = [copy.deepcopy(model) for _ in range(3)]  # copied before any hook: a copy would keep them
    rank0 = Rank(replicas[0], gather=lambda v: sent_by_rank0.append(v.clone()) or v[None])
    rank1 = Rank(replicas[1], gather=lambda v: v[None])
    both = Rank(replicas[2], gather=lambda v: torch.stack([sent_by_rank0.pop(0), v]))
    for rank in (rank0, rank1, both):
        rank.samples.append(rank.collector.init_flush(step=0).sample())
    data0, data1 = batches(6, seed=0), batches(6, seed=1)
    for step, (b0, b1) in enumerate(zip(data0, data1)):
        losses = [rank0.forward_backward(b0), rank1.forward_backward(b1), both.forward_backward(b1)]
        for group in zip(*(rank.model.parameters() for rank in (rank0, rank1, both))):
            if group[0].grad is None:  # the path the other kind of input takes
                continue
            mean = (group[0].grad + group[1].grad) / 2  # DDP's all-reduce
            for p in group:
                p.grad = mean.clone()
        for rank, loss in zip((rank0, rank1, both), losses):
            rank.step(loss, step)
    val0, val1 = batches(2, seed=2)
    for rank, batch in ((rank0, val0), (rank1, val1), (both, val1)):
        rank.validate(batch, step=6)
    assert not sent_by_rank0, "every gather of rank 0 was met by the other rank"

    checked = set()
    for s0, s1, s in zip(rank0.samples, rank1.samples, both.samples):
        assert set(s0.stats) == set(s1.stats) == set(s.stats)
        for key, series in s.stats.items():
            stat = key.split("[")[0]
            assert set(series) == set(s0.stats[key]) == set(s1.stats[key]), key
            for subject, value in series.items():
                expected = catalogue_reduction(stat, s0.stats[key][subject], s1.stats[key][subject])
                assert value == pytest.approx(expected, rel=1e-5, abs=1e-9), f"{key}[{subject}] at step {s.step}"
            checked.add(key)
    # everything the collector sends by itself (the Lightning callback adds epochs_since_val)
    claimed = {k for k in claimed_keys("torch") - {"epochs_since_val"} if k.split("[")[0] not in ONLY_WHEN_THERE}
    assert checked == claimed
