"""Fused reductions against straightforward per-tensor torch reference computations."""

import math

import pytest

torch = pytest.importorskip("torch")

from tripwire.callbacks.torch import reductions as R  # noqa: N812 - the module under test, on every line

pytestmark = pytest.mark.torch


def _tensors():
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(7, 5, generator=g),
        torch.zeros(3),
        torch.tensor([0.0, 2.0, 0.0, -4.0]),
        torch.randn(2, 3, 4, generator=g).half(),
        torch.full((6,), 0.3),  # constant: variance exactly 0
        torch.randn(4, generator=g).to(torch.bfloat16),
    ]


def test_tensor_stats_match_per_tensor_reference():
    ts = _tensors()
    got = R.tensor_stats(ts, set(R.TENSOR_STATS))
    for i, t in enumerate(ts):
        f = t.float()
        assert got["norm"][i].item() == pytest.approx(f.norm().item(), rel=1e-5, abs=1e-7)
        assert got["abs_mean"][i].item() == pytest.approx(f.abs().mean().item(), rel=1e-5, abs=1e-7)
        assert got["zero_frac"][i].item() == pytest.approx((f == 0).float().mean().item())
        assert got["var"][i].item() == pytest.approx(f.var(correction=0).item(), rel=1e-4, abs=1e-9)
        assert got["nonfinite"][i].item() == 0.0
    assert got["var"][4].item() < 1e-12  # two-pass: no E[x²]-E[x]² cancellation (~1e-8 here)
    assert all(v.dtype == torch.float32 and v.shape == (len(ts),) for v in got.values())


def test_only_requested_stats_are_computed():
    assert set(R.tensor_stats(_tensors(), {"norm"})) == {"norm"}
    with pytest.raises(ValueError, match="unknown tensor statistics"):
        R.tensor_stats(_tensors(), {"median"})


def test_nonfinite_flags_nan_and_inf_per_tensor():
    ts = [torch.ones(3), torch.tensor([1.0, float("nan")]), torch.tensor([float("inf"), 0.0])]
    assert R.tensor_stats(ts, {"nonfinite"})["nonfinite"].tolist() == [0.0, 1.0, 1.0]


def test_fallbacks_give_the_same_numbers(monkeypatch):
    ts = _tensors()
    per_tensor = R.tensor_stats(ts, set(R.TENSOR_STATS))  # the CPU path
    monkeypatch.setattr(R, "_fused", lambda tensors: True)  # the accelerator path: cat + segment_reduce
    fused = R.tensor_stats(ts, set(R.TENSOR_STATS))
    monkeypatch.setattr(R, "_foreach_norm_ok", False)
    monkeypatch.setattr(R, "_segment_reduce_ok", False)
    plain = R.tensor_stats(ts, set(R.TENSOR_STATS))
    for key in fused:
        torch.testing.assert_close(fused[key], plain[key], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(fused[key], per_tensor[key], rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("group", [1 << 22, 40])  # one group; several (a tensor above the limit alone)
def test_grouped_cpu_stats_equal_the_per_tensor_loop(monkeypatch, group):
    g = torch.Generator().manual_seed(1)
    ts = [torch.randn(30, 20, generator=g), torch.zeros(7), torch.tensor([1.0, float("nan"), 0.0]),
          torch.tensor([float("inf"), 0.0, 0.0, 2.0]), torch.randn(50, generator=g).relu(), torch.full((5,), -2.5)]
    monkeypatch.setattr(R, "GROUPED_STATS_ELEMENTS", group)
    for want in ({"abs_mean"}, {"zero_frac"}, set(R.TENSOR_STATS)):
        grouped = R.tensor_stats(ts, want)
        monkeypatch.setattr(R, "cpu_grouped_stats", False)
        loop = R.tensor_stats(ts, want)
        monkeypatch.setattr(R, "cpu_grouped_stats", True)
        assert set(grouped) == want
        for key in want:
            torch.testing.assert_close(grouped[key], loop[key], rtol=0, atol=0, equal_nan=True)
    assert R.tensor_stats(ts, {"zero_frac"})["zero_frac"][2].item() == pytest.approx(1 / 3)  # NaN is no zero


def test_norm_orders_match_linalg():
    ts = _tensors()
    for order in (1.0, 2.0, math.inf):
        ref = torch.stack([torch.linalg.vector_norm(t.float(), order) for t in ts])
        torch.testing.assert_close(R.norms(ts, order), ref, rtol=1e-5, atol=1e-7)


def test_update_ratio_and_allclose_flags():
    before = [torch.ones(4), torch.full((3,), 2.0), torch.zeros(2)]
    after = [torch.ones(4) * 1.1, torch.full((3,), 2.0), torch.zeros(2)]
    ratios = R.update_ratios(after, before)
    assert ratios[0].item() == pytest.approx(0.1, rel=1e-5)
    assert ratios[1].item() == 0.0 and ratios[2].item() == 0.0
    nudged = [before[0] + 1e-9, before[1] * (1 + 1e-3), torch.tensor([0.0, float("nan")])]
    flags = R.allclose_flags(nudged, before, rtol=1e-5, atol=1e-8)
    expected = [float(torch.allclose(a, b, rtol=1e-5, atol=1e-8)) for a, b in zip(nudged, before)]
    assert flags.tolist() == expected == [1.0, 0.0, 0.0]


def test_step_ratios_restore_the_snapshot_exactly_where_nothing_moved():
    before = [torch.ones(4), torch.full((3,), 2.0), torch.zeros(2)]
    after = [torch.ones(4) * 1.1, torch.full((3,), 2.0), torch.zeros(2)]
    snapshot = [t.clone() for t in before]
    scale = R.norms(before)
    ratios = R.step_ratios(after, snapshot, scale, restore=True)
    torch.testing.assert_close(ratios, R.update_ratios(after, before))
    assert torch.equal(snapshot[1], before[1]) and torch.equal(snapshot[2], before[2])
    torch.testing.assert_close(snapshot[0], before[0], rtol=1e-6, atol=0)
    R.step_ratios(after, snapshot, scale, restore=False)
    assert snapshot[0].tolist() == pytest.approx([-0.1] * 4)  # not restored: the difference stays


@pytest.mark.parametrize("fused,group", [(False, None), (True, None), (True, 60)])
def test_allclose_and_unchanged_flags_equal_torch_allclose_on_both_paths(monkeypatch, fused, group):
    monkeypatch.setattr(R, "_fused", lambda tensors: fused)
    if group is not None:  # groups of <= 60 elements: the 1000-element tensor alone, the others together
        monkeypatch.setattr(R, "ALLCLOSE_GROUP_ELEMENTS", group)
        assert R._groups([torch.zeros(1000), torch.zeros(7), torch.zeros(4), torch.zeros(3)], group) == [[0], [1, 2, 3]]
    g = torch.Generator().manual_seed(3)
    base = [torch.randn(50, 20, generator=g), torch.randn(7, generator=g), torch.zeros(4), torch.ones(3)]
    one_moved = base[0].clone()
    one_moved[3, 4] += 1e-2  # one element of 1000: the norm bound cannot tell, the exact test must
    cases = [
        [t.clone() for t in base],
        [one_moved, base[1] * (1 + 1e-7), base[2] + 1e-9, torch.tensor([1.0, float("nan"), 1.0])],
        [t + 1.0 for t in base],
    ]
    for current in cases:
        expected = [float(torch.allclose(a, b, rtol=1e-5, atol=1e-8)) for a, b in zip(current, base)]
        assert R.allclose_flags(current, base, 1e-5, 1e-8).tolist() == expected
        scratch = [t.clone() for t in base]  # unchanged_flags may overwrite its snapshot
        assert R.unchanged_flags(current, scratch, R.norms(base), 1e-5, 1e-8).tolist() == expected


def test_init_gain_and_identical_rows():
    torch.manual_seed(0)
    default = torch.nn.Linear(64, 32).weight
    const = torch.full((32, 64), 0.05)
    big = torch.randn(32, 64) * 3.0
    gains = R.init_gains([default, const, big])
    assert gains[0].item() == pytest.approx(1 / math.sqrt(3), rel=0.1)  # kaiming_uniform(a=sqrt(5))
    assert gains[1].item() < 1e-6
    assert gains[2].item() == pytest.approx(3.0 * 8, rel=0.1)
    conv = torch.nn.Conv2d(3, 8, 3).weight
    assert R.init_gains([conv])[0].item() == pytest.approx(conv.std(correction=0).item() * math.sqrt(27), rel=1e-5)
    rows = R.identical_rows([default, const, torch.cat([const[:16], big[:16]])], 1e-5, 1e-8)
    assert rows.tolist() == pytest.approx([0.0, 1.0, 0.0])
    # a single output unit (binary or regression head) is never "identical rows"
    single = [torch.nn.Linear(64, 1).weight, torch.full((1, 64), 0.05)]
    assert R.identical_rows(single, 1e-5, 1e-8).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("shape,dims", [((8, 5), (0,)), ((4, 6, 5), (0, 1)), ((4, 3, 5, 5), (0, 2, 3)), ((9,), (0,))])
def test_reduce_dims_per_layout(shape, dims):
    assert R.reduce_dims(torch.zeros(shape)) == dims


def test_class_counts_match_bincount_and_report_largest_label():
    y = torch.tensor([0, 3, 3, 1, -100, 3])
    counts = R.class_counts(y, capacity=8)
    assert counts[:8].tolist() == torch.bincount(y[y >= 0], minlength=8).float().tolist()
    assert counts[8].item() == 3.0
    over = R.class_counts(torch.tensor([1, 9]), capacity=4)
    assert over[:4].sum().item() == 1.0 and over[4].item() == 9.0  # label 9 is past the capacity


def test_feature_stats_tabular_and_images():
    x = torch.randn(10, 3) * torch.tensor([1.0, 10.0, 100.0])
    st = R.feature_stats(x)
    torch.testing.assert_close(st[1], x.sum(0))
    torch.testing.assert_close(st[2], x.square().sum(0))
    torch.testing.assert_close(st[3], x.amin(0))
    torch.testing.assert_close(st[4], x.amax(0))
    assert st[0].tolist() == [10.0, 10.0, 10.0]
    img = torch.rand(2, 3, 4, 4)
    st = R.feature_stats(img)
    assert st.shape == (5, 3) and st[0].tolist() == [32.0] * 3
    torch.testing.assert_close(st[1], img.sum((0, 2, 3)))


@pytest.mark.parametrize("shape", [(64, 12), (8, 5, 12), (4, 12, 6, 6), (12,)])
def test_unit_shares_equal_boolean_references(shape):
    g = torch.Generator().manual_seed(1)
    y = torch.randn(*shape, generator=g) * 2
    y.view(-1)[:5] = torch.tensor([0.0, 0.99, -0.99, 1.0, 0.5])  # ties at the thresholds
    dims = R.reduce_dims(y)
    ref = lambda mask: mask.float().mean(dims) if dims else mask.float()
    torch.testing.assert_close(R.active_share(y, dims), ref(y != 0))
    torch.testing.assert_close(R.extreme_share(y, dims, 0.99), ref(y.abs() >= 0.99))
    s = torch.sigmoid(y)
    torch.testing.assert_close(R.extreme_share(s, dims, 0.49, center=0.5), ref((s <= 0.01) | (s >= 0.99)))
    half = y.to(torch.bfloat16)
    torch.testing.assert_close(R.active_share(half, dims), ref(half != 0))
    assert R.active_share(half, dims).dtype == torch.float32


@pytest.mark.parametrize("capacity", [4, 32])
def test_the_host_tally_of_cpu_labels_equals_the_device_class_counts(capacity):
    from tripwire.callbacks.torch.label_tally import LabelTally

    g = torch.Generator().manual_seed(3)
    batches = [torch.randint(-1, 12, (64,), generator=g), torch.randint(0, 3, (8, 1), generator=g),
               torch.full((5,), -100)]
    tally, counts = LabelTally(), torch.zeros(capacity + 1)
    counts[-1] = -1.0
    for labels in batches:
        tally.add(labels)
        R.add_class_counts(counts, R.class_counts(labels, capacity))
    assert tally.vector(capacity).tolist() == counts.tolist()


@pytest.mark.parametrize("rehearse_accelerator", [False, True])
def test_a_batch_whose_labels_fail_still_leaves_a_neutral_class_count(monkeypatch, rehearse_accelerator):
    """The failed batch's accumulator exists anyway (so every rank packs the same pieces): no class,
    no largest label, on the host for CPU labels and on the labels' device otherwise."""
    from tripwire.callbacks.torch import batch as data_probes
    from tripwire.stats import Need

    monkeypatch.setattr(R, "accelerator_path_on_cpu", rehearse_accelerator)
    probe = data_probes.DataProbe([Need("label_count")])
    fail = lambda *args: (_ for _ in ()).throw(RuntimeError("out of memory"))
    monkeypatch.setattr(data_probes.LabelTally, "add", fail)
    monkeypatch.setattr(data_probes, "class_counts", fail)
    with pytest.raises(RuntimeError):
        probe.add(None, torch.tensor([0, 1, 1]))
    assert (probe._label_tally is None) == rehearse_accelerator
    (piece,) = probe.pieces()
    assert piece.values.tolist() == [0.0] * 32 + [-1.0] and piece.read(piece.values.tolist()) == {}
