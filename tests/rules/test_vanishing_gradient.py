"""`vanishing_gradient` on scripted per-parameter gradient streams (one sample every 10 steps)."""

import numpy as np

from tripwire.rules.vanishing_gradient import VanishingGradient
from tripwire.stats import Sample


def grad_sample(step, norms, means=None):
    means = means if means is not None else {k: n / 100 for k, n in norms.items()}
    return Sample(step, stats={"grad_norm": dict(norms), "grad_abs_mean": dict(means)})


def run(rule, stream):
    """Feed a list of {param: grad_norm} dicts; return {(step, subject)} of fired verdicts."""
    out = set()
    for i, norms in enumerate(stream):
        step = 10 * (i + 1)
        out |= {(step, v.subject) for v in rule.check(grad_sample(step, norms)) if v.fired}
    return out


def sigmoid_mlp(rng, depth=10, samples=6):
    # each sigmoid layer passes back at most a quarter: norms fall ~4-10x per layer towards the input
    return [{f"net.{2 * i}.weight": float(0.5 * 7.0 ** -(depth - 1 - i) * np.exp(0.3 * rng.standard_normal()))
             for i in range(depth)} for _ in range(samples)]


def test_deep_sigmoid_mlp_fires_for_the_early_layers_after_patience():
    rng = np.random.default_rng(0)
    rule = VanishingGradient("vanishing_gradient")
    out = run(rule, sigmoid_mlp(rng))
    first = {s for step, s in out if step == 20}
    assert {"net.0.weight", "net.2.weight"} <= first
    assert "net.18.weight" not in first and not any(step == 10 for step, _ in out)


def test_message_names_the_parameter_the_ratio_and_the_largest():
    rule = VanishingGradient("v", VanishingGradient.Params(patience=1))
    verdicts = rule.check(grad_sample(30, {"net.0.weight": 1e-7, "net.18.weight": 0.5}, {"net.0.weight": 1e-6,
                                                                                         "net.18.weight": 1e-2}))
    (v,) = [v for v in verdicts if v.fired]
    assert v.subject == "net.0.weight" and v.value == 2e-7 and v.threshold == 1e-6
    assert "net.0.weight" in v.message and "net.18.weight" in v.message and "step 30" in v.message
    assert "ReLU" in v.suggestion


def test_tiny_mean_gradient_fires_on_its_own():
    rule = VanishingGradient("v", VanishingGradient.Params(patience=1))
    (v,) = rule.check(grad_sample(10, {"only.weight": 1e-4}, {"only.weight": 1e-11}))
    assert v.fired and v.value == 1e-11 and v.threshold == 1e-9 and "mean |grad|" in v.message


def test_healthy_networks_with_per_layer_norms_spread_over_1e3_stay_silent():
    rng = np.random.default_rng(1)
    names = ["embed.weight", "enc.0.attn.in_proj_weight", "enc.0.linear1.weight", "enc.0.norm1.weight",
             "enc.1.linear2.weight", "conv1.weight", "conv2.weight", "head.weight"]
    base = np.geomspace(1e-3, 1.0, len(names))
    stream = [{n: float(b * np.exp(0.5 * rng.standard_normal())) for n, b in zip(names, base, strict=True)}
              for _ in range(200)]
    assert run(VanishingGradient("v"), stream) == set()


def test_absent_parameters_are_not_evaluated_and_keep_their_count():
    rule = VanishingGradient("v")
    rule.check(grad_sample(10, {"a.weight": 1e-9, "b.weight": 1.0}))
    # a.weight got no gradient at step 20 (unused branch): no verdict for it
    assert [v.subject for v in rule.check(grad_sample(20, {"b.weight": 1.0}))] == ["b.weight"]
    (a, _) = rule.check(grad_sample(30, {"a.weight": 1e-9, "b.weight": 1.0}))
    assert a.fired and a.subject == "a.weight"


def test_recovery_clears():
    rule = VanishingGradient("v", VanishingGradient.Params(patience=1))
    assert rule.check(grad_sample(10, {"a.weight": 1e-9, "b.weight": 1.0}))[0].fired
    assert not rule.check(grad_sample(20, {"a.weight": 1e-2, "b.weight": 1.0}))[0].fired


def test_bias_before_batchnorm_is_skipped_by_default():
    # measured in a healthy CNN: a conv bias followed by BatchNorm gets ~1e-8 of the largest grad norm
    stream = [{"conv2.bias": 3e-8, "conv2.weight": 0.2, "head.weight": 0.5}] * 4
    assert run(VanishingGradient("v"), stream) == set()
    with_biases = VanishingGradient("v", VanishingGradient.Params(include_biases=True))
    assert {s for _, s in run(with_biases, stream)} == {"conv2.bias"}


def test_non_finite_values_are_ignored():
    rule = VanishingGradient("v", VanishingGradient.Params(patience=1))
    verdicts = rule.check(grad_sample(10, {"a.weight": float("nan"), "b.weight": 1.0},
                                      {"a.weight": float("nan"), "b.weight": 0.01}))
    assert [(v.subject, v.fired) for v in verdicts] == [("b.weight", False)]


def test_tiny_gradients_of_a_converged_model_stay_silent_but_not_of_a_stuck_one():
    norms = {"embed.weight": 1e-3, "head.weight": 2e-3}
    healthy, tiny = {"embed.weight": 1e-4, "head.weight": 2e-4}, {"embed.weight": 5e-10, "head.weight": 8e-10}

    def fired(losses):
        rule = VanishingGradient("v")
        out = []
        for i, loss in enumerate(losses):
            sample = grad_sample(10 * (i + 1), norms, healthy if i < 2 else tiny)
            sample.add("loss", loss)
            out += [v for v in rule.check(sample) if v.fired]
        return out

    assert fired([0.7, 0.01, 3e-4, 2e-4, 3e-4]) == []  # fits its data: the gradients are small for a reason
    stuck = fired([0.7, 0.69, 0.7, 0.69, 0.7])  # same gradients, loss not moving: vanished
    assert {v.subject for v in stuck} == {"embed.weight", "head.weight"}
    assert "mean |grad|" in stuck[0].message


def test_normalization_scales_and_shifts_are_vectors_by_shape_or_by_keras_name():
    # a MobileNet-style projection BatchNorm: its shift gets mean |g| ~3e-8 in healthy training
    means = {"block.conv.weight": 1e-3, "block.bn.weight": 3e-8, "proj/batch_normalization/beta": 3e-8}
    norms = {k: 1e-2 for k in means}
    rule = VanishingGradient("v", VanishingGradient.Params(patience=1))
    first = Sample(0, stats={"grad_abs_mean": means, "grad_norm": norms,
                             "param_ndim": {"block.conv.weight": 4.0, "block.bn.weight": 1.0}})
    assert [v.subject for v in rule.check(first)] == ["block.conv.weight"]
    later = Sample(10, stats={"grad_abs_mean": means, "grad_norm": norms})  # shapes come once
    assert [v.subject for v in rule.check(later)] == ["block.conv.weight"]
    included = VanishingGradient("v", VanishingGradient.Params(patience=1, include_biases=True, threshold=1e-7))
    assert sorted(v.subject for v in included.check(first) if v.fired) == ["block.bn.weight",
                                                                         "proj/batch_normalization/beta"]


def test_attention_query_and_key_weights_of_a_learning_transformer_stay_silent():
    # the healthy BERT of the corpus, two samples in a row: query/key gradients ~8e-6 of the
    # largest (the classifier head), mean |g| down to 7e-9, while the loss falls 0.69 -> 0.05
    rule = VanishingGradient("v")
    for step, q_norm, q_mean in [(90, 1.5e-6, 7e-9), (100, 5.5e-7, 8e-9), (110, 9e-6, 4e-8)]:
        sample = grad_sample(step, {"bert.layer.1.attention.self.query.weight": q_norm, "classifier.weight": 0.15},
                             {"bert.layer.1.attention.self.query.weight": q_mean, "classifier.weight": 1e-3})
        assert not any(v.fired for v in rule.check(sample))
