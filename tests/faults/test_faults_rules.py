"""Item 3: a broken rule, built in or a user's own (``type: user_rules:Class``), inside a real fit.

Without ``strict`` the rule is disabled with exactly one logged error and everything else goes
on: the run record, checkpoints, and a second rule that still stops training on schedule.
With ``strict=True`` training ends with a :class:`tripwire.RuleError` naming the rule and the
original exception.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")

from lightning.pytorch.callbacks import ModelCheckpoint

from figures import check, most, tally
from lightning_kit import Task, blobs, loader, mlp, trainer, tripwire
from tripwire import ConfigError, RuleError

pytestmark = pytest.mark.torch

NAN_FROM = 30  # batches from here on are NaN: `nonfinite` must still stop training at step 30
BROKEN = {  # user rule class -> what goes wrong, as the logged error names it
    "RaisesAfter": "ZeroDivisionError",
    "ReturnsNone": "TypeError",
    "UnserializableEvidence": "TypeError",
    "UnserializableState": "TypeError",
    "NeedsRaises": "RuntimeError",
}


def errors_about(caplog: pytest.LogCaptureFixture, rule: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR and f"rule {rule} " in r.getMessage()]


def run(tmp_path, cls: str, strict: bool = False):
    """Train with the broken rule next to `nonfinite`, a run record and step checkpoints."""
    torch.manual_seed(0)
    x, y = blobs(n=64 * 16)
    x[NAN_FROM * 16:] = float("nan")
    config = {"interval": 2, "rules": {"broken": {"type": f"user_rules:{cls}", "after": 6} if cls == "RaisesAfter"
                                       else {"type": f"user_rules:{cls}"}, "nonfinite": {}}}
    cb = tripwire(config, log_dir=tmp_path / "runs", strict=strict)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=10, save_top_k=-1)
    tr = trainer([cb, saver], max_steps=60, enable_checkpointing=True)
    tr.fit(Task(mlp()), loader(x, y, batch_size=16, shuffle=False))
    return cb, tr


@pytest.mark.parametrize("cls", sorted(BROKEN))
def test_broken_user_rule_is_disabled_once_and_training_goes_on(cls, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tripwire")
    cb, tr = run(tmp_path, cls)
    errors = errors_about(caplog, "broken")
    tally("rules.fits_with_broken_rule", 1)
    crashed = not (cb.stopped_by is not None and cb.stopped_by.rule == "nonfinite" and tr.global_step == NAN_FROM + 1)
    check("rules.training_stopped_by_broken_rule", tally("rules.training_stopped_by_broken_rule", int(crashed)))
    check("rules.max_errors_logged_per_rule", most("rules.max_errors_logged_per_rule", len(errors)))
    assert len(errors) == 1 and BROKEN[cls] in errors[0].getMessage()
    assert "broken" in cb.monitor.engine.disabled
    assert [f.rule for f in cb.findings] == ["nonfinite"]
    assert len(list((tmp_path / "ckpt").glob("*.ckpt"))) == 3  # steps 10, 20, 30: checkpoints still work
    from tripwire.record import Run

    with Run.latest(tmp_path / "runs") as record:
        assert [f.rule for f in record.findings] == ["nonfinite"]
        assert record.series("loss_nonfinite")[0].tolist()[:3] == [0, 2, 4]


@pytest.mark.parametrize("cls", sorted(BROKEN))
def test_strict_stops_with_an_error_naming_the_rule(cls, tmp_path):
    with pytest.raises(RuleError) as info:
        run(tmp_path, cls, strict=True)
    message = str(info.value)
    unclear = not ("'broken'" in message and BROKEN[cls] in message)
    check("rules.strict_unclear", tally("rules.strict_unclear", int(unclear)))


def test_rule_needing_an_unknown_statistic_is_refused_when_the_callback_is_built(tmp_path):
    """It would never see its statistic and never judge anything: a ConfigError, before training."""
    with pytest.raises(ConfigError) as info:
        run(tmp_path, "UnknownStatistic")
    error = info.value
    assert error.path == "rules.broken" and "'no_such_statistic'" in error.problem and "valid: " in error.problem
    assert not (tmp_path / "runs").exists()  # refused before any training or record


@pytest.mark.parametrize("strict", [False, True])
def test_xgboost_rule_that_raises(strict, caplog):
    xgb = pytest.importorskip("xgboost")
    from tripwire import XGBoostTripwire

    caplog.set_level(logging.WARNING, logger="tripwire")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    data = xgb.DMatrix(x, (x[:, 0] > 0).astype(int))
    cb = XGBoostTripwire({"interval": 2, "rules": {"broken": {"type": "user_rules:RaisesAfter", "after": 4}}},
                         log_dir=False, strict=strict)
    params = {"objective": "binary:logistic", "max_depth": 2}
    if strict:
        with pytest.raises(RuleError, match=r"'broken'.*ZeroDivisionError"):
            xgb.train(params, data, 20, evals=[(data, "train")], callbacks=[cb], verbose_eval=False)
        return
    booster = xgb.train(params, data, 20, evals=[(data, "train")], callbacks=[cb], verbose_eval=False)
    tally("rules.fits_with_broken_rule", 1)
    assert booster.num_boosted_rounds() == 20
    assert len(errors_about(caplog, "broken")) == 1
