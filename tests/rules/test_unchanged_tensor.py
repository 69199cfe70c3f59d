"""`unchanged_tensor` on scripted allclose flags (1 = allclose to the previous sample)."""

from tripwire.rules.unchanged_tensor import UnchangedTensor
from tripwire.stats import Need, Sample

KEY = Need("weight_unchanged", (("rtol", 1e-5), ("atol", 1e-8))).key


def run(rule, stream, key=KEY):
    out = []
    for i, values in enumerate(stream):
        step = 10 * (i + 1)
        out += [(step, v.subject) for v in rule.check(Sample(step, stats={key: values})) if v.fired]
    return out


def test_layer_cut_off_from_the_loss_fires_after_patience():
    stream = [{"aux.weight": 1.0, "fc.weight": 0.0}] * 5
    rule = UnchangedTensor("unchanged_tensor")
    assert run(rule, stream) == [(30, "aux.weight"), (40, "aux.weight"), (50, "aux.weight")]
    (v, _) = rule.check(Sample(60, stats={KEY: {"aux.weight": 1.0, "fc.weight": 0.0}}))
    assert "aux.weight" in v.message and "6 samples" in v.message and "steps 10..60" in v.message
    assert "optimizer" in v.suggestion and "requires_grad" in v.suggestion


def test_healthy_training_and_occasional_unchanged_samples_stay_silent():
    # e.g. an embedding whose rows were not hit, or an LR warmup starting at 0: at most 2 in a row
    pattern = [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    stream = [{"emb.weight": pattern[i % len(pattern)], "fc.weight": 0.0} for i in range(100)]
    assert run(UnchangedTensor("u"), stream) == []


def test_tolerances_are_part_of_the_statistic_key():
    rule = UnchangedTensor("u", UnchangedTensor.Params(rtol=1e-3, atol=0.0))
    need = rule.needs()[0]
    assert need.key == "weight_unchanged[atol=0.0,rtol=0.001]"
    assert run(rule, [{"w": 1.0}] * 3) == []  # the default key is not this rule's series
    assert run(rule, [{"w": 1.0}] * 3, key=need.key) == [(30, "w")]


def test_biases_are_skipped_unless_included():
    stream = [{"conv.bias": 1.0}] * 3
    assert run(UnchangedTensor("u"), stream) == []
    assert run(UnchangedTensor("u", UnchangedTensor.Params(include_biases=True)), stream) == [(30, "conv.bias")]


def test_change_clears_and_rearms():
    rule = UnchangedTensor("u", UnchangedTensor.Params(patience=1))
    assert [v.fired for v in rule.check(Sample(10, stats={KEY: {"w": 1.0}}))] == [True]
    assert [v.fired for v in rule.check(Sample(20, stats={KEY: {"w": 0.0}}))] == [False]
    assert rule.state["runs"] == {}


def test_samples_do_not_count_once_the_training_loss_has_converged():
    def fired(losses):
        rule = UnchangedTensor("u")
        out = []
        for i, loss in enumerate(losses):
            sample = Sample(10 * (i + 1), stats={rule.needs()[0].key: {"norm.weight": 1.0}, "loss": {None: loss}})
            out += [v.subject for v in rule.check(sample) if v.fired]
        return out

    assert fired([0.7, 1e-3, 5e-4, 4e-4, 3e-4]) == []  # fits its data: tiny Adam steps within rtol
    assert fired([0.7, 0.69, 0.7, 0.7]) == ["norm.weight", "norm.weight"]  # stuck and not learning


def test_a_schedule_annealed_to_zero_does_not_count_but_a_zero_rate_from_the_start_does():
    def feed(lrs):
        rule = UnchangedTensor("u")
        key = rule.needs()[0].key
        fired = []
        for i, lr in enumerate(lrs):
            sample = Sample(10 * (i + 1), stats={key: {"fc.weight": 1.0}, "lr": {None: lr}, "loss": {None: 1.0}})
            fired += [sample.step for v in rule.check(sample) if v.fired]
        return fired

    assert feed([1e-3, 1e-3, 1e-6, 1e-7, 0.0, 0.0]) == []
    assert feed([0.0] * 4) == [30, 40]
