"""CI subset of the compatibility matrix (``benchmarks/compat_matrix.py``): representative Keras
layers (TensorFlow backend), torch modules and a transformers model inside Lightning, and XGBoost
objective x booster pairs, each trained 3 steps without tripwire, with every rule at interval 1
and with the default rules. Every case must (a) not crash, (b) train exactly as without
tripwire, (c) draw no finding from the default rules, (d) have the statistics that apply.

A case listed in ``benchmarks/_compat_known.py`` (a failure the matrix found, pending a fix)
is an expected failure; once it passes, the test fails until the entry is removed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _compat_core import Outcome, Run, apply_known, judge
from _compat_known import KNOWN

KERAS = ("LSTM", "GRU", "SimpleRNN", "Conv2D", "BatchNormalization", "MultiHeadAttention")
TORCH = ("Linear", "Conv2d", "BatchNorm2d", "LSTM", "GRU", "LSTMCell", "Embedding", "EmbeddingBag",
         "MultiheadAttention", "TransformerEncoderLayer", "LayerNorm", "PReLU", "ReLU", "Tanh", "Sigmoid",
         "LazyLinear")
HUB = ("transformers GPT2ForSequenceClassification",)
XGBOOST = ("binary:logistic gbtree", "multi:softprob dart", "reg:squarederror gblinear", "rank:ndcg gbtree",
           "survival:aft gbtree", "count:poisson dart", "XGBClassifier binary:logistic")


def verdict(outcome: Outcome) -> None:
    """Pass an ``ok`` case; xfail a known failure; fail everything else with what happened."""
    outcome = apply_known(outcome, KNOWN)
    if outcome.status == "known":
        pytest.xfail(f"known failure: {outcome.known} [{outcome.detail}]")
    assert outcome.status != "fixed", (f"{outcome.name} passes now: remove it from benchmarks/_compat_known.py "
                                       f"({outcome.known})")
    assert outcome.status == "ok", f"{outcome.name}: {outcome.status}: {outcome.detail}"
    assert not outcome.findings


@pytest.fixture(scope="module")
def keras_cases():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    pytest.importorskip("keras")
    import _compat_keras

    return {c.name: c for c in _compat_keras.layer_cases()}


@pytest.fixture(scope="module")
def torch_cases():
    pytest.importorskip("torch")
    pytest.importorskip("lightning")
    import _compat_torch

    _compat_torch.quiet()
    return {c.name: c for c in _compat_torch.module_cases()}


@pytest.mark.keras
@pytest.mark.parametrize("name", KERAS)
def test_keras_layer(keras_cases, name):
    import _compat_keras

    verdict(_compat_keras.run_case(keras_cases[name], "keras-tensorflow"))


@pytest.mark.torch
@pytest.mark.parametrize("name", TORCH)
def test_torch_module(torch_cases, name):
    import _compat_torch

    verdict(_compat_torch.run_case(torch_cases[name]))


@pytest.mark.torch
@pytest.mark.parametrize("name", HUB)
def test_transformers_model(torch_cases, name):
    pytest.importorskip("transformers")
    import _compat_hub
    import _compat_torch

    verdict(_compat_torch.run_case({c.name: c for c in _compat_hub.hub_cases()}[name]))


@pytest.mark.xgboost
@pytest.mark.parametrize("name", XGBOOST)
def test_xgboost_objective_booster(name):
    pytest.importorskip("xgboost")
    import _compat_xgb

    verdict(_compat_xgb.run_case({c.name: c for c in _compat_xgb.train_cases() + _compat_xgb.sklearn_cases()}[name]))


@pytest.mark.torch
def test_a_training_tripwire_changes_is_reported_changed(torch_cases, monkeypatch):
    """The matrix can fail: tripwire's batch hook nudging a weight is a changed training."""
    import _compat_torch
    from tripwire.callbacks.torch.lightning import TripwireCallbackImpl

    original = TripwireCallbackImpl.on_train_batch_end

    def nudging(self, trainer, pl_module, *args, **kwargs):
        with _compat_torch.torch.no_grad():
            pl_module.head.weight.mul_(1.01)
        return original(self, trainer, pl_module, *args, **kwargs)

    monkeypatch.setattr(TripwireCallbackImpl, "on_train_batch_end", nudging)
    outcome = _compat_torch.run_case(torch_cases["Linear"])
    assert outcome.status == "changed" and "step 2" in outcome.detail, outcome


def test_verdicts():
    """How three runs become a verdict: a failure of the plain fit is n/a, not a crash; a crash
    outranks the findings; a finding alone is reported; parts switched off are named."""
    plain = Run(losses=[1.0, 0.9], weights=[[1.0]])
    same = Run(losses=[1.0, 0.9], weights=[[1.0]])
    assert judge("torch", "module", "X", Run(error="TypeError: no"), None, None).status == "n/a"
    crashed = judge("torch", "module", "X", plain, Run(error="ValueError: probe"), same)
    assert (crashed.status, crashed.detail) == ("crash", "crash: every rule: ValueError: probe")
    noisy = Run(losses=[1.0, 0.9], weights=[[1.0]], findings=["dead_relu: fc"])
    assert judge("torch", "module", "X", plain, same, noisy).status == "findings"
    missing = Run(losses=[1.0, 0.9], weights=[[1.0]], missing=["gradient statistics lack fc.bias"])
    assert judge("torch", "module", "X", plain, missing, same).status == "missing"
    off = Run(losses=[1.0, 0.9], weights=[[1.0]], disabled={"activation probe on layer 'fc'": "boom"})
    assert judge("torch", "module", "X", plain, off, same).detail == "switched off: activation probe on layer 'fc'"
    known = apply_known(judge("torch", "module", "X", plain, Run(error="E: x"), same), {"torch:X": "pending"})
    assert (known.status, known.raw, known.known) == ("known", "crash", "pending")
    fixed = apply_known(judge("torch", "module", "X", plain, same, same), {"torch:X": "pending"})
    assert fixed.status == "fixed"
