"""The torch collector against per-tensor reference computations, driven by a plain torch loop."""

import pytest

torch = pytest.importorskip("torch")

from torch import nn

import tripwire
from tripwire.callbacks.torch.activations import ActivationProbe
from tripwire.callbacks.torch.batch import ConfusionProbe, DataProbe, split_batch
from tripwire.callbacks.torch.collector import TorchCollector
from tripwire.callbacks.torch.packing import Piece, pack
from tripwire.stats import Need

pytestmark = pytest.mark.torch


def read(pieces):
    return pack(pieces).read()


def step(net, opt, col, x, y, sampled=True):
    col.begin_batch((x, y), sampled)
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    col.before_optimizer_step(opt)
    opt.step()
    col.add_loss(loss)
    return loss


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)
        self.frozen = nn.Linear(2, 2).requires_grad_(False)
        self.unused = nn.Linear(2, 2)  # trainable but cut off from the loss: grad stays None

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


GRAD_NEEDS = [Need(s) for s in ("grad_norm", "grad_abs_mean", "grad_zero_frac", "grad_var", "grad_global_norm",
                                "grad_nonfinite", "weight_norm", "weight_nonfinite", "update_ratio")]


def test_gradient_and_weight_stats_match_reference():
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    col = TorchCollector(GRAD_NEEDS)
    col.attach(net)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    col.begin_batch((x, y), True)
    nn.functional.cross_entropy(net(x), y).backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    before = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
    col.before_optimizer_step(opt)
    opt.step()
    s = col.flush(step=0, epoch=0).sample()
    assert set(s.stats) == {n.key for n in GRAD_NEEDS}
    assert set(s.stats["grad_norm"]) == set(grads) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    for name, g in grads.items():
        assert s.stats["grad_norm"][name] == pytest.approx(g.norm().item(), rel=1e-5)
        assert s.stats["grad_abs_mean"][name] == pytest.approx(g.abs().mean().item(), rel=1e-5)
        assert s.stats["grad_zero_frac"][name] == pytest.approx((g == 0).float().mean().item())
        assert s.stats["grad_var"][name] == pytest.approx(g.var(correction=0).item(), rel=1e-4, abs=1e-12)
    total = torch.cat([g.reshape(-1) for g in grads.values()]).norm().item()
    assert s.scalar("grad_global_norm") == pytest.approx(total, rel=1e-5)
    assert s.scalar("grad_nonfinite") == 0.0 and s.scalar("weight_nonfinite") == 0.0
    weights = dict(net.named_parameters())
    assert "frozen.weight" not in s.stats["weight_norm"] and "unused.weight" in s.stats["weight_norm"]
    for name, w0 in before.items():
        assert s.stats["weight_norm"][name] == pytest.approx(weights[name].norm().item(), rel=1e-5)
        if name in grads:
            ref = (weights[name].detach() - w0).norm() / w0.norm()
            assert s.stats["update_ratio"][name] == pytest.approx(ref.item(), rel=1e-4)
    # no gradient, so no update to measure: not a learning rate that is too low
    assert set(s.stats["update_ratio"]) == set(grads)
    assert col.params.no_gradient == ["unused.weight", "unused.bias"]


def unchanged_run(other: Need):
    """A Net under SGD, a collector of ``weight_unchanged`` and ``other`` attached to it, a batch."""
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    need = Need("weight_unchanged", (("rtol", 1e-5), ("atol", 1e-8)))
    col = TorchCollector([need, other])
    col.attach(net)
    return net, opt, need, col, torch.randn(8, 4), torch.randint(0, 3, (8,))


def test_unsampled_steps_compute_nothing_and_weight_unchanged_spans_samples():
    torch.manual_seed(0)
    net, opt, need, col, x, y = unchanged_run(Need("grad_norm"))
    step(net, opt, col, x, y)
    first = col.flush(0, 0).sample()
    assert need.key not in first.stats  # nothing to compare with yet
    step(net, opt, col, x, y, sampled=False)
    assert col.params._grad_pieces == [] and col.params._l2 == []
    step(net, opt, col, x, y)
    flags = col.flush(2, 0).sample().stats[need.key]
    assert flags["fc1.weight"] == 0.0
    assert "frozen.weight" not in flags and "unused.weight" not in flags  # frozen; no gradient


@pytest.mark.parametrize("fused", [False, True])
def test_update_ratio_and_weight_unchanged_share_one_snapshot(monkeypatch, fused):
    """The snapshot measures the update ratio in place and is restored for the next sample's
    comparison: both statistics equal their references over several samples, on both paths."""
    from tripwire.callbacks.torch import reductions as torch_reductions

    monkeypatch.setattr(torch_reductions, "_fused", lambda tensors: fused)
    torch.manual_seed(0)
    net = Net()
    rest = [p for n, p in net.named_parameters() if n != "fc2.weight"]
    opt = torch.optim.SGD([{"params": rest}, {"params": [net.fc2.weight]}], lr=0.1)
    unchanged = Need("weight_unchanged", (("rtol", 1e-5), ("atol", 1e-8)))
    col = TorchCollector([unchanged, Need("update_ratio")])
    col.attach(net)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    trainable = {n: p for n, p in net.named_parameters() if p.requires_grad}
    kept = {}
    for sample in range(4):
        if sample == 2:
            opt.param_groups[1]["lr"] = 0.0  # fc2.weight stops moving from here on
        step(net, opt, col, x, y, sampled=False)
        pre = {n: p.detach().clone() for n, p in trainable.items()}
        col.begin_batch((x, y), True)
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        col.before_optimizer_step(opt)
        opt.step()
        stats = col.flush(sample, 0).sample().stats
        for name, p in trainable.items():
            if name in stats["update_ratio"]:
                ref = ((p.detach() - pre[name]).norm() / pre[name].norm().clamp_min(1e-30)).item()
                assert stats["update_ratio"][name] == pytest.approx(ref, rel=1e-4, abs=1e-12), name
        if kept:
            expected = {n: float(torch.allclose(pre[n], kept[n], rtol=1e-5, atol=1e-8)) for n in trainable
                        if not n.startswith("unused.")}  # no gradient: left out
            assert stats[unchanged.key] == expected
        else:
            assert unchanged.key not in stats
        kept = pre
    assert stats[unchanged.key]["fc2.weight"] == 1.0 and stats[unchanged.key]["fc1.weight"] == 0.0


def test_a_resized_parameter_starts_a_new_snapshot_instead_of_failing():
    net, opt, need, col, x, y = unchanged_run(Need("update_ratio"))
    step(net, opt, col, x, y)
    col.flush(0, 0)
    net.unused.weight = nn.Parameter(torch.zeros(3, 2))  # same name, new shape (a resized embedding, say)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    step(net, opt, col, x, y)
    stats = col.flush(1, 0).sample().stats
    assert need.key not in stats  # nothing comparable yet
    step(net, opt, col, x, y)
    flags = col.flush(2, 0).sample().stats[need.key]
    assert flags["fc1.weight"] == 0.0 and "unused.weight" not in flags


def test_learning_rate_is_the_largest_over_the_groups_that_stepped_and_tensors_are_not_read():
    net = Net()
    opt = torch.optim.SGD([{"params": net.fc1.parameters(), "lr": 0.02},
                           {"params": net.fc2.parameters(), "lr": torch.tensor(0.5)}], lr=0.1)
    col = TorchCollector([Need("lr")])
    col.attach(net)
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    step(net, opt, col, x, y)
    assert col.flush(0, 0).sample().scalar("lr") == pytest.approx(0.5)
    opt.param_groups[1]["lr"] = 0.001
    step(net, opt, col, x, y, sampled=False)  # not sampled: nothing reported
    step(net, opt, col, x, y)
    assert col.flush(2, 0).sample().scalar("lr") == pytest.approx(0.02)


def test_nonfinite_gradients_and_losses_are_flagged():
    net = nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    col = TorchCollector([Need("grad_nonfinite"), Need("loss"), Need("loss_nonfinite")])
    col.attach(net)
    for value in [1.0, 3.0, float("nan")]:  # only the last batch is sampled; losses count for all
        col.begin_batch(None, sampled=value != value)
        out = net(torch.full((2, 3), value)).sum()
        opt.zero_grad()
        out.backward()
        col.before_optimizer_step(opt)
        col.add_loss(torch.tensor(value))
    s = col.flush(2, 0).sample()
    assert s.scalar("grad_nonfinite") == 1.0
    assert s.scalar("loss") == pytest.approx(2.0)  # mean of the finite losses
    assert s.scalar("loss_nonfinite") == 1.0


def test_embedding_gradient_mean_is_over_touched_rows_and_sparse_grads_are_skipped():
    emb = nn.Embedding(1000, 4)
    sparse = nn.Embedding(50, 4, sparse=True)
    model = nn.ModuleDict({"emb": emb, "sparse": sparse})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    col = TorchCollector([Need("grad_abs_mean"), Need("grad_norm")])
    col.attach(model)
    col.begin_batch(None, True)
    ids = torch.tensor([1, 2, 3])
    (emb(ids).sum() + sparse(ids).sum()).backward()
    col.before_optimizer_step(opt)
    s = col.flush(0, 0).sample()
    g = emb.weight.grad
    assert s.stats["grad_abs_mean"]["emb.weight"] == pytest.approx(g.abs().sum().item() / g.count_nonzero().item())
    assert s.stats["grad_abs_mean"]["emb.weight"] > 100 * g.abs().mean().item()
    assert "sparse.weight" not in s.stats["grad_norm"]


def _unit_ref_dead(y, unit_dim, below):
    y = y.movedim(unit_dim, -1).reshape(-1, y.shape[unit_dim])
    return ((y > 0).float().mean(0) < below).float().mean().item()


@pytest.mark.parametrize("shape,unit_dim", [((32, 10), -1), ((4, 8, 10), -1), ((4, 6, 5, 5), 1)])
def test_dead_relu_fraction_per_unit_layout(shape, unit_dim):
    torch.manual_seed(0)
    x = torch.randn(shape)
    units = shape[unit_dim]
    shift = torch.where(torch.arange(units) < units // 2, -100.0, 0.0)  # half the units dead
    view = [1] * len(shape)
    view[unit_dim] = units
    x = x + shift.reshape(view)
    relu = nn.Sequential(nn.ReLU())
    need = Need("act_dead_frac", (("inactive_below", 0.01),))
    probe = ActivationProbe(relu, [need, Need("act_zero_frac"), Need("act_var")])
    probe.allocate(torch.device("cpu"))
    relu(x)  # inactive: nothing recorded
    assert probe.accumulator.abs().sum().item() == 0.0
    probe.active = True
    out = relu(x)
    got = probe.read(probe.accumulator.tolist())
    assert got[need.key]["0"] == pytest.approx(_unit_ref_dead(out, unit_dim, 0.01)) == pytest.approx(0.5, abs=0.1)
    assert got["act_zero_frac"]["0"] == pytest.approx((out == 0).float().mean().item())
    assert got["act_var"]["0"] == pytest.approx(out.var(correction=0).item(), rel=1e-5)
    probe.remove()
    probe.reset()
    relu(x)
    assert probe.accumulator.abs().sum().item() == 0.0


def test_saturation_fractions_and_families():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 20), nn.Tanh(), nn.Linear(20, 20), nn.Sigmoid(), nn.GELU())
    tanh_need = Need("act_tanh_sat_frac", (("level", 0.99), ("share", 0.9)))
    sig_need = Need("act_sigmoid_sat_frac", (("level", 0.99), ("share", 0.9)))
    dead_need = Need("act_dead_frac", (("inactive_below", 0.01),))
    probe = ActivationProbe(net, [tanh_need, sig_need, dead_need])
    assert [name for name, _ in probe.layout] == ["1", "3"]  # GELU is not hooked, Tanh has no dead units
    probe.allocate(torch.device("cpu"))
    with torch.no_grad():
        net[0].weight.mul_(100.0)
    probe.active = True
    x = torch.randn(64, 5)
    h = torch.tanh(net[0](x))
    s = torch.sigmoid(net[2](h))
    net(x)
    got = probe.read(probe.accumulator.tolist())
    assert got[tanh_need.key]["1"] == pytest.approx(((h.abs() >= 0.99).float().mean(0) >= 0.9).float().mean().item())
    assert got[tanh_need.key]["1"] > 0.5
    ref = (((s <= 0.01) | (s >= 0.99)).float().mean(0) >= 0.9).float().mean().item()
    assert got[sig_need.key]["3"] == pytest.approx(ref)
    assert dead_need.key not in got


def test_data_probe_labels_inputs_tokens():
    probe = DataProbe([Need("label_count"), Need("input_sum"), Need("input_count"), Need("input_min"),
                       Need("token_count", (("token", 0),)), Need("token_total")])
    x = torch.randn(6, 3)
    probe.add(x, torch.tensor([0, 2, 2, 2, 2, -100]))
    probe.add(torch.tensor([[0, 0, 5], [7, 0, 0]]), None)
    got = read(probe.pieces())
    assert got["label_count"] == {"0": 1.0, "1": 0.0, "2": 4.0}
    assert got["input_count"] == {"0": 6.0, "1": 6.0, "2": 6.0}
    assert [got["input_sum"][str(i)] for i in range(3)] == pytest.approx(x.sum(0).tolist(), rel=1e-5)
    assert [got["input_min"][str(i)] for i in range(3)] == pytest.approx(x.amin(0).tolist())
    assert "input_max" not in got  # not needed, not reported
    assert got["token_count[token=0]"] == {None: 4.0} and got["token_total"] == {None: 6.0}
    assert probe.pieces() == []  # reset after a flush


def test_input_statistics_reach_the_rules_at_growing_intervals_and_lose_no_rows():
    probe = DataProbe([Need("input_count"), Need("label_count")])
    counts = []
    for _ in range(8):
        probe.add(torch.randn(5, 2), torch.tensor([0, 1, 1, 0, 1]))
        got = read(probe.pieces())
        assert got["label_count"] == {"0": 2.0, "1": 3.0}  # labels: every flush
        counts.append(got.get("input_count", {}).get("0"))
    # flushes 1, 2, 4, 8 carry the inputs since the previous carrying flush; nothing is dropped
    assert counts == [5.0, 5.0, None, 10.0, None, None, None, 20.0]


def test_input_statistics_later_come_from_the_batches_just_before_each_carrying_flush():
    probe = DataProbe([Need("input_count"), Need("input_max")])
    carried = {}
    for flush in range(1, 70):
        probe.add(torch.full((5, 2), float(flush)), None)  # the batch's value says which flush it was
        got = read(probe.pieces())
        if got:
            carried[flush] = (got["input_count"]["0"], got["input_max"]["0"])
    assert sorted(carried) == [1, 2, 4, 8, 16, 32, 64]
    assert carried[16] == (5.0 * 8, 16.0)  # flushes 9..16: every sampled batch (all within 8 of a carrier)
    assert carried[32] == (5.0 * 8, 32.0) and carried[64] == (5.0 * 8, 64.0)  # 25..32 and 57..64 only


def test_label_capacity_grows_and_drops_the_overflowing_window():
    probe = DataProbe([Need("label_count")])
    probe.add(None, torch.tensor([0, 1, 40]))
    assert read(probe.pieces()) == {}  # 40 >= capacity 32: window dropped, capacity grown
    assert probe.capacity == 64
    probe.add(None, torch.tensor([0, 1, 40]))
    counts = read(probe.pieces())["label_count"]
    assert len(counts) == 41 and counts["40"] == 1.0 and counts["5"] == 0.0


def test_split_batch_shapes():
    x, y = torch.zeros(2, 3), torch.ones(2, dtype=torch.long)
    assert split_batch((x, y)) == (x, y)
    assert split_batch([x]) == (x, None)
    assert split_batch({"input_ids": y, "attention_mask": x, "labels": y}) == (y, y)
    assert split_batch({"x": x, "target": y}) == (x, y)
    assert split_batch(x) == (x, None)
    assert split_batch("text") == (None, None)
    assert split_batch({"a": (x, y)}, batch_fn=lambda b: b["a"]) == (x, y)


def test_confusion_from_logits_binary_and_ids():
    probe = ConfusionProbe()
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 0.0, 5.0]])
    probe.add(logits, torch.tensor([0, 1, 2]))
    assert read(probe.pieces()) == {"confusion": {"0,0": 1.0, "1,2": 1.0, "2,2": 1.0}}
    probe = ConfusionProbe()
    probe.add(torch.tensor([[2.0], [-1.0]]), torch.tensor([1, 1]))
    assert read(probe.pieces()) == {"confusion": {"1,1": 1.0, "1,0": 1.0}}
    probe = ConfusionProbe()
    probe.add(torch.tensor([1, 1]), torch.tensor([0, 1]))
    probe.add(torch.randn(3, 4), torch.tensor([0, 1]))  # batch size mismatch: skipped
    assert read(probe.pieces()) == {"confusion": {"0,1": 1.0, "1,1": 1.0}}


def test_pack_reduces_per_element_across_ranks():
    rank1 = torch.tensor([1.0, 5.0, -2.0, 7.0])

    def gather(v):  # two ranks: this one and a fixed other
        return torch.stack([v, rank1[: v.numel()]])

    pieces = [Piece(torch.tensor([2.0, 1.0, 3.0]), ["sum", "max", "min"], lambda v: {"a": dict(enumerate(v))}),
              Piece(torch.tensor([9.0]), "same", lambda v: {"b": {None: v[0]}})]
    got = pack(pieces, gather).read()
    assert got == {"a": {0: 3.0, 1: 5.0, 2: -2.0}, "b": {None: 9.0}}


def test_observed_user_statistics_flow_into_the_sample():
    col = TorchCollector([Need("loss")])
    col.attach(nn.Linear(2, 2))
    tripwire.observe("entropy", torch.tensor([1.0, 3.0]))
    tripwire.observe("entropy", torch.tensor(4.0))
    s = col.flush(0, 0).sample()
    assert s.stats == {"user/entropy": {None: 3.0}}


def test_init_statistics_only_for_linear_and_conv_weights():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2),
                        nn.LayerNorm(2))
    with torch.no_grad():
        net[2].weight.fill_(0.1)
    col = TorchCollector([Need("init_weight_gain"), Need("init_identical_rows")])
    col.attach(net)
    s = col.init_flush().sample()
    assert set(s.stats["init_weight_gain"]) == {"0.weight", "2.weight"}
    assert s.stats["init_identical_rows"]["2.weight"] == 1.0
    assert s.stats["init_identical_rows"]["0.weight"] == 0.0
