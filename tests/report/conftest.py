"""Run records for the report tests, written with the real RunRecord.

``hostile_run`` has the statistics and findings of a run where three things went wrong (a dead
ReLU layer, vanishing gradients in two parameters, a growing generalization gap), plus a
finding from a user's own rule, with layer names, the run name and messages that are HTML and
JavaScript. ``zoo_run`` has findings of most built-in rule kinds, made by the real engine.
``quiet_run`` is a healthy run with no findings.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tripwire.finding import Finding
from tripwire.record import RunRecord
from tripwire.stats import Sample

if importlib.util.find_spec("plotly") is None:  # the `report` extra is not installed (core env)
    collect_ignore = ["test_page.py", "test_browser.py", "test_report_cli.py", "test_evidence.py",
                      "test_report_doctests.py"]

SCRIPT_LAYER = "<script>document.body.setAttribute('data-pwned','script')</script>"
IMG_LAYER = "<img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">"
RUN_NAME = "run-<img src=x onerror=document.body.setAttribute('data-pwned','title')>"
CLOSE_TAG = "</script><script>document.body.setAttribute('data-pwned','json')</script>"
HOSTILE = (SCRIPT_LAYER, IMG_LAYER, RUN_NAME, CLOSE_TAG)

DEAD = "act_dead_frac[inactive_below=0.01]"
PARAMS = ["fc1.weight", "fc2.weight", SCRIPT_LAYER, "out.weight"]
LAYERS = ["act1", IMG_LAYER, "act3"]


def hostile_series(n: int = 200, every: int = 10) -> list[Sample]:
    """Samples at steps every..n*every: loss falls, val_loss rises after the middle, layer
    IMG_LAYER dies from step 1000, fc2.weight and SCRIPT_LAYER gradients vanish from step 1200,
    one global-norm sample is NaN and one +Inf."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(1, n + 1):
        step = i * every
        s = Sample(step=step, epoch=step // 500)
        s.add("loss", 2.0 * np.exp(-step / 600) + 0.05 + 0.01 * rng.random())
        s.add("grad_global_norm", float("nan") if i == 50 else float("inf") if i == 51 else 1.0 + rng.random())
        norms = {p: 0.5 + 0.1 * rng.random() for p in PARAMS}
        if step >= 1200:
            norms["fc2.weight"] = norms[SCRIPT_LAYER] = 1e-9
        s.add("grad_norm", norms)
        s.add("grad_abs_mean", {p: v / 100 for p, v in norms.items()})
        s.add("update_ratio", {p: 1e-3 * (1 + rng.random()) for p in PARAMS})
        s.add(DEAD, {layer: (0.9 if layer == IMG_LAYER and step >= 1000 else 0.05 + 0.05 * rng.random())
                     for layer in LAYERS})
        samples.append(s)
        if step % 100 == 0:  # validation every 100 steps
            v = Sample(step=step, epoch=step // 500)
            v.add("val_loss", 0.8 + max(0.0, step - 1000) / 400)
            samples.append(v)
    return samples


def hostile_findings(samples: list[Sample]) -> list[Finding]:
    """What the real rules find in ``samples`` (their messages name the hostile layers), plus a
    user rule's finding whose message and suggestion try to close the script element."""
    from tripwire.config import Config
    from tripwire.engine import Engine

    engine = Engine(Config.load({"rules": {"dead_relu": {}, "vanishing_gradient": {}, "overfit": {}}}))
    found = [f for s in samples for f in engine.evaluate(s)]
    assert sorted(f.rule for f in found) == ["dead_relu", "overfit", "vanishing_gradient"], found
    return found + [Finding("grad_spike", "my_rules.spikes:GradSpike", 500, 1, "error", None, float("nan"), None,
                            f"global norm is NaN {CLOSE_TAG}", f"lower the learning rate {CLOSE_TAG}")]


def write_run(log_dir, samples, findings, run_name, config=None):
    rec = RunRecord.create(log_dir, config, run_name=run_name, framework="torch")
    for s in samples:
        rec.add_sample(s)
    for f in findings:
        rec.add_finding(f)
    rec.close()
    return rec.directory


@pytest.fixture
def hostile_run(tmp_path):
    samples = hostile_series()
    config = {"interval": 10, "rules": {"overfit": {"ratio": 0.5, "actions": ["alert", "stop"]}},
              "actions": {"webhook": {"url": "https://hooks.example/T0/SECRET-TOKEN"}}}
    return write_run(tmp_path, samples, hostile_findings(samples), RUN_NAME, config)


def zoo_samples(engine):
    """Samples that trip most built-in rules: an imbalanced, padded, confused, unnormalized,
    flat-loss run with a dead ReLU, a saturated tanh, a zero/constant/frozen weight, tiny updates,
    a tiny gradient, a gradient spike, a NaN loss, deep trees and one dominant feature."""
    keys = {n.stat: n.key for n in engine.needs()}
    rng = np.random.default_rng(0)
    out = []
    for i in range(1, 201):
        step = i * 10
        s = Sample(step, step // 500)
        s.add("loss", 2.0 + 0.01 * rng.random())
        s.add("label_count", {"0": 95.0, "1": 5.0})
        s.add(keys["token_count"], 80.0)
        s.add("token_total", 100.0)
        s.add("tree_depth", 12.0 if step >= 500 else 6.0)
        s.add("feature_importance", {**{"f0": 0.6, "f1": 0.3, "f2": 0.099}, **{f"f{k}": 1e-4 for k in range(3, 13)}})
        s.add("input_count", {"price": 100.0, "x": 100.0})
        s.add("input_sum", {"price": 1e7, "x": 0.0})
        s.add("input_sumsq", {"price": 1e12 + 1e10, "x": 100.0})
        s.add("input_min", {"price": 5e4, "x": -3.0})
        s.add("input_max", {"price": 2e5, "x": 3.0})
        s.add("update_ratio", {"fc1.weight": 1e-8, "fc2.weight": 1e-3})
        s.add("grad_norm", {"fc1.weight": 1.0, "fc2.weight": 1e-7})
        s.add("grad_abs_mean", {"fc1.weight": 1e-2, "fc2.weight": 1e-6})
        s.add("grad_global_norm", 1e6 if step == 1500 else 1.0 + 0.1 * rng.random())
        s.add(keys["act_tanh_sat_frac"], {"tanh1": 0.8, "tanh2": 0.1})
        s.add(keys["act_dead_frac"], {"relu1": 0.9 if step > 300 else 0.1})
        s.add("weight_zero_frac", {"fc3.weight": 1.0, "fc1.weight": 0.0})
        s.add("weight_var", {"fc3.weight": 0.0, "fc1.weight": 0.1})
        s.add(keys["weight_unchanged"], {"fc3.weight": 1.0, "fc1.weight": 0.0})
        s.add("loss_nonfinite", 1.0 if step == 1800 else 0.0)
        if i == 1:
            s.add("init_weight_gain", {"fc1.weight": 0.01, "fc2.weight": 1.0})
            s.add("init_identical_rows", {"fc1.weight": 0.0, "fc2.weight": 0.0})
        out.append(s)
        if step % 100 == 0:
            v = Sample(step, step // 500)
            v.add("val_loss", 2.0 + step / 200)
            v.add("confusion", {"0,0": 40.0, "0,1": 10.0, "1,1": 5.0, "1,0": 45.0})
            out.append(v)
    return out


@pytest.fixture
def zoo_run(tmp_path):
    """A run whose findings come from the real engine with every built-in rule enabled."""
    from tripwire.config import Config
    from tripwire.engine import Engine
    from tripwire.registry import builtin_rules

    engine = Engine(Config.load({"rules": {k: {} for k in builtin_rules()}}))
    samples = zoo_samples(engine)
    findings = [f for s in samples for f in engine.evaluate(s)]
    assert not engine.disabled, engine.disabled
    return write_run(tmp_path, samples, findings, "zoo")


@pytest.fixture
def quiet_run(tmp_path):
    samples = [Sample(step=s, epoch=0, stats={"loss": {None: 1.0 / s}, "grad_norm": {"w": 0.1}})
               for s in range(10, 510, 10)]
    return write_run(tmp_path, samples, [], "quiet")


@pytest.fixture
def data():
    """The names and builders above, for tests (importing conftest directly is fragile)."""
    from types import SimpleNamespace

    return SimpleNamespace(SCRIPT_LAYER=SCRIPT_LAYER, IMG_LAYER=IMG_LAYER, RUN_NAME=RUN_NAME, CLOSE_TAG=CLOSE_TAG,
                           HOSTILE=HOSTILE, DEAD=DEAD, PARAMS=PARAMS, LAYERS=LAYERS, hostile_series=hostile_series,
                           hostile_findings=hostile_findings, write_run=write_run)


def page_figures(text: str) -> list[dict]:
    """The figures embedded in a report page: [{"id", "figure": {"data", "layout"}}]."""
    import json
    import re

    match = re.search(r'<script type="application/json" id="tw-figures">(.*?)</script>', text, re.S)
    assert match, "no figure data in the page"
    return json.loads(match.group(1))


def trace_values(values) -> np.ndarray:
    """A plotly trace array (a list or a base64 typed array) as numpy."""
    import base64

    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
    return np.asarray(values)


@pytest.fixture
def figures():
    return page_figures


@pytest.fixture
def decode():
    return trace_values
