"""`rollback` in a plain loop: the poisoned update of step 150 (inputs x1000) is undone by
restoring the state kept at step 100."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from test_loop_spike import POISONED, run, unmonitored

pytestmark = pytest.mark.torch


def test_rollback_undoes_the_poisoned_update():
    (clean, _), (damaged, _) = unmonitored(False), unmonitored(True)
    config = {"rules": {"loss_spike": {"actions": ["alert", {"rollback": {"every": 50}}]}}}
    loss, _, tw = run(config, poison=True)
    spike, done, effect = tw.findings
    assert (spike.kind, done.kind, effect.kind) == ("loss_spike", "rollback", "rollback_effect")
    assert done.evidence["restored_step"] == 100 and done.evidence["skipped"] == [101, POISONED]
    assert damaged > 2 * clean and loss < 1.1 * clean
    assert not tw.should_stop
