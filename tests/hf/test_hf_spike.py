"""`loss_spike` under the Hugging Face Trainer (through the shared torch driver): a step whose loss
spikes is found at that step. Its remediations: ``test_hf_remediation.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("transformers")
pytest.importorskip("accelerate")
sys.path.insert(0, str(Path(__file__).parent))

from hf_kit import bert, train
from tripwire.transformers import TripwireCallback

SPIKED = 100


def test_a_spiking_step_is_found_at_that_step(tmp_path):
    """Step 100's logits are x-1000 (every prediction confidently wrong, as with flipped labels): its
    loss spikes. The loss reaches tripwire before the update (the model's output, kept by a forward
    hook), so the spike is judged in that step."""
    model, calls = bert(), []

    def poison(module, args, output):
        calls.append(None)
        return output * -1000 if len(calls) == SPIKED + 1 else output

    model.classifier.register_forward_hook(poison)
    cb = TripwireCallback({"rules": {"loss_spike": {"series": ["loss"]}}}, interval=10, log_dir=False)
    train([cb], tmp_path, steps=130, eval_steps=None, model=model)
    [finding] = cb.findings
    assert finding.rule == "loss_spike" and finding.subject == "loss"
    assert finding.evidence["last_spike_step"] == SPIKED and finding.step == SPIKED  # decided in that step's flush
