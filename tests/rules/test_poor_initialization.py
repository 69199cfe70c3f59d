"""`poor_initialization`: scripted init statistics, plus the defaults against torch's real initializers."""

import math

import pytest

from tripwire.rules.poor_initialization import PoorInitialization
from tripwire.stats import Sample


def init_sample(gains, identical=None):
    identical = identical if identical is not None else {k: 0.0 for k in gains}
    return Sample(0, stats={"init_weight_gain": gains, "init_identical_rows": identical})


def fired(rule, sample):
    return {v.subject for v in rule.check(sample) if v.fired}


def test_large_gain_fires_naming_the_layer_and_the_value():
    rule = PoorInitialization("poor_initialization")
    (v, ok) = rule.check(init_sample({"net.0.weight": 13.6, "net.2.weight": 0.58}))
    assert v.fired and v.subject == "net.0.weight" and v.value == 13.6 and v.threshold == 3.5
    assert "net.0.weight" in v.message and "13.6" in v.message and "step 0" in v.message
    assert "xavier" in v.suggestion.lower() and not ok.fired


def test_tiny_gain_fires_with_the_lower_limit():
    (v,) = PoorInitialization("p").check(init_sample({"fc.weight": 0.028}))
    assert v.fired and v.threshold == 0.05 and "shrink" in v.message


def test_constant_init_fires_once_with_both_reasons():
    (v,) = PoorInitialization("p").check(init_sample({"fc.weight": 0.0}, {"fc.weight": 1.0}))
    assert v.fired and "identical" in v.message and "gain" in v.message
    assert v.evidence["identical_share"] == 1.0 and v.evidence["gain"] == 0.0


def test_identical_rows_with_a_normal_gain_fire():
    (v,) = PoorInitialization("p").check(init_sample({"fc.weight": 1.2}, {"fc.weight": 0.75}))
    assert v.fired and v.value == 0.75 and v.threshold == 0.5 and "random" in v.suggestion


def test_ignore_skips_a_deliberate_zero_init_layer():
    rule = PoorInitialization("p", PoorInitialization.Params(ignore=("*.lora_B*",)))
    assert fired(rule, init_sample({"attn.lora_B.weight": 0.0, "attn.lora_A.weight": 0.6})) == set()


def test_only_the_series_that_arrive_are_evaluated():
    rule = PoorInitialization("p")
    assert rule.check(Sample(10, stats={"loss": {None: 1.0}})) == []
    (v,) = rule.check(Sample(0, stats={"init_identical_rows": {"w": 1.0}}))
    assert v.fired and v.evidence["gain"] is None


def test_min_gain_must_be_below_max_gain():
    with pytest.raises(ValueError, match="min_gain"):
        PoorInitialization.Params(min_gain=2.0, max_gain=1.0)


def _gain(w):
    return float(w.std()) * math.sqrt(w[0].numel())


def _identical(w):
    """Share of rows equal to the mean row; 0 for a single row (the collectors' contract)."""
    if w.shape[0] < 2:
        return 0.0
    return float((w == w.mean(0, keepdim=True)).all(1).float().mean())


def test_defaults_are_silent_on_standard_initializers_and_fire_on_faults():
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    healthy = {
        "default_linear": nn.Linear(20, 64).weight, "default_linear_wide": nn.Linear(3, 512).weight,
        "default_conv": nn.Conv2d(3, 64, 3).weight,
        "he": nn.init.kaiming_normal_(torch.empty(256, 784)),
        "glorot": nn.init.xavier_uniform_(torch.empty(256, 784)),
        "glorot_2_to_1000": nn.init.xavier_uniform_(torch.empty(1000, 2)),
        "glorot_tanh": nn.init.xavier_uniform_(torch.empty(256, 256), gain=5 / 3),
        "glorot_tanh_256_to_1": nn.init.xavier_uniform_(torch.empty(1, 256), gain=5 / 3),
        "orthogonal_3_to_512": nn.init.orthogonal_(torch.empty(512, 3)),
        "bert_0.02": nn.init.trunc_normal_(torch.empty(768, 768), std=0.02),
    }
    faulty = {
        "std3_tanh": torch.randn(64, 20) * 3, "std3_fan_in_2": torch.randn(64, 2) * 3,
        "std1e-3": torch.randn(256, 784) * 1e-3, "constant": torch.full((64, 20), 0.1),
    }
    tensors = healthy | faulty
    gains = {k: _gain(w.detach()) for k, w in tensors.items()}
    identical = {k: _identical(w.detach()) for k, w in tensors.items()}
    assert fired(PoorInitialization("p"), init_sample(gains, identical)) == set(faulty)
