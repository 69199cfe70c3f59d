"""`token_ratio` on scripted token counts, built from synthetic padded batches."""

import json

import numpy as np
import pytest

from tripwire.config import Config
from tripwire.engine import Engine
from tripwire.rules.token_ratio import TokenRatio
from tripwire.stats import CATALOGUE, Need, Sample

PAD_KEY = Need("token_count", (("token", 0),)).key


def padded_batches(lengths, max_len, n, batch=8, seed=0, token=0):
    """One sample per batch of sequences padded to `max_len`; real tokens are ids 1..999."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ids = np.full((batch, max_len), token)
        for row, length in enumerate(rng.integers(*lengths, size=batch)):
            ids[row, :length] = rng.integers(1, 1000, size=length)
        key = Need("token_count", (("token", token),)).key
        out.append(Sample(10 * (i + 1), stats={key: {None: float((ids == token).sum())},
                                               "token_total": {None: float(ids.size)}}))
    return out


def fired_steps(rule, samples):
    return [s.step for s in samples for v in rule.check(s) if v.fired]


def test_mostly_padding_fires_after_min_tokens():
    # sequences of 10..40 tokens padded to 128: ~80% padding; 8 x 128 = 1024 tokens per batch
    rule = TokenRatio("tr")
    verdicts = [v for s in padded_batches((10, 40), 128, 5) for v in rule.check(s)]
    assert verdicts[0].fired and 0.7 < verdicts[0].value < 0.9
    assert "token id 0 is" in verdicts[0].message and "padding" in verdicts[0].message
    assert "max_length" in verdicts[0].suggestion


def test_waits_for_min_tokens():
    rule = TokenRatio("tr", TokenRatio.Params(min_tokens=5000))
    assert fired_steps(rule, padded_batches((10, 40), 128, 8)) == [50, 60, 70, 80]


def test_dynamic_padding_stays_silent():
    # sequences of 60..128 padded to 128: ~25% padding
    rule = TokenRatio("tr")
    verdicts = [v for s in padded_batches((60, 128), 128, 50, seed=1) for v in rule.check(s)]
    assert verdicts and not any(v.fired for v in verdicts)


def test_watches_the_configured_token():
    rule = TokenRatio("tr", TokenRatio.Params(token=3, threshold=0.3))
    assert [n.key for n in rule.needs()] == ["token_count[token=3]", "token_total"]
    samples = padded_batches((10, 40), 128, 3, token=3)
    (v,) = rule.check(samples[0])
    assert v.fired and v.evidence["token"] == 3 and "unknown-token" in v.suggestion
    assert TokenRatio("tr").check(samples[0]) == []  # the pad-0 count is not in these samples


def test_engine_collects_the_keyed_need_and_reports_once():
    engine = Engine(Config.load({"rules": {"token_ratio": {}}}), framework="torch")
    assert {n.key for n in engine.needs()} == {PAD_KEY, "token_total"}
    findings = [f for s in padded_batches((10, 40), 128, 20) for f in engine.evaluate(s)]
    assert [(f.step, f.subject) for f in findings] == [(10, None)]
    assert Engine(Config.load({"rules": {"token_ratio": {}}}), framework="xgboost").rules == {}


def test_clears_when_the_share_falls_back():
    rule = TokenRatio("tr")
    samples = [Sample(1, stats={PAD_KEY: {None: 600.0}, "token_total": {None: 1000.0}}),
               Sample(2, stats={PAD_KEY: {None: 100.0}, "token_total": {None: 1000.0}})]
    assert [v.fired for s in samples for v in rule.check(s)] == [True, False]


@pytest.mark.parametrize("stats", [{}, {"token_total": {None: 10.0}}, {PAD_KEY: {None: float("nan")},
                                                                      "token_total": {None: 10.0}}])
def test_incomplete_samples_are_skipped(stats):
    rule = TokenRatio("tr")
    assert rule.check(Sample(1, stats=stats)) == []
    assert rule.state == {"count": 0.0, "total": 0.0}


def test_state_round_trips_through_json():
    samples = padded_batches((10, 40), 128, 10, seed=2) + padded_batches((100, 128), 128, 40, seed=3)
    ref = TokenRatio("tr")
    whole = [v for s in samples for v in ref.check(s)]
    assert any(v.fired for v in whole) and any(not v.fired for v in whole)
    first = TokenRatio("tr")
    head = [v for s in samples[:17] for v in first.check(s)]
    state = json.loads(json.dumps(first.state))
    assert state == first.state
    second = TokenRatio("tr")
    second.state = state
    assert head + [v for s in samples[17:] for v in second.check(s)] == whole


def test_contract():
    assert all(n.stat in CATALOGUE for n in TokenRatio("tr").needs())
    assert set(TokenRatio.frameworks) == {"torch", "keras"}
    assert all(f.description for f in TokenRatio.Params.model_fields.values())
