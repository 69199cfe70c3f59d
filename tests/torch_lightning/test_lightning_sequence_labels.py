"""Per-token labels (a language model's next tokens) are no classes to balance.

The labels of a causal LM are the next token ids, one per position: their frequencies follow the
text (a few tokens make most of it, many appear rarely or never), so counting them as classes
made `class_imbalance` fire on every healthy GPT-style run. Class counts come from per-example
labels only; per-example labels that are imbalanced still fire.
"""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch import nn

from lightning_kit import Task, blobs, fit, loader, mlp, tripwire

pytestmark = pytest.mark.torch

VOCAB, LENGTH = 64, 16


class NextToken(Task):
    """A tiny causal LM: embedding, GRU, per-position logits over the vocabulary."""

    def __init__(self) -> None:
        super().__init__(nn.ModuleDict({"emb": nn.Embedding(VOCAB, 32), "rnn": nn.GRU(32, 32, batch_first=True),
                                        "head": nn.Linear(32, VOCAB)}), lr=3e-3, optimizer="adam")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.net["rnn"](self.net["emb"](ids))
        return self.net["head"](hidden)

    def training_step(self, batch, batch_idx):
        ids, labels = batch
        return nn.functional.cross_entropy(self(ids).transpose(1, 2), labels)

    def validation_step(self, batch, batch_idx):
        ids, labels = batch
        self.log("val_loss", nn.functional.cross_entropy(self(ids).transpose(1, 2), labels))


def zipf_text(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token streams with Zipf frequencies (rank r drawn with weight 1/r); labels are the next token."""
    g = torch.Generator().manual_seed(seed)
    weights = 1.0 / torch.arange(1, VOCAB + 1, dtype=torch.float)
    text = torch.multinomial(weights, n * (LENGTH + 1), replacement=True, generator=g).view(n, LENGTH + 1)
    return text[:, :-1], text[:, 1:]


def test_next_token_labels_are_not_judged_as_classes():
    ids, labels = zipf_text(512, seed=0)
    counts = torch.bincount(labels.flatten(), minlength=VOCAB)
    assert counts.max() / counts.min().clamp(min=1) > 10  # as token counts they are far past the limit
    cb = fit(NextToken(), loader(ids, labels), loader(*zipf_text(128, seed=1), shuffle=False),
             callback=tripwire(interval=2), max_steps=60, val_check_interval=8)
    assert any(n.stat == "label_count" for n in cb.monitor.needs())  # the default set counts labels
    assert not [f for f in cb.findings if f.rule == "class_imbalance"], [str(f) for f in cb.findings]


def test_imbalanced_per_example_labels_still_fire():
    x, _ = blobs(n=512)
    y = torch.where(torch.rand(512, generator=torch.Generator().manual_seed(0)) < 0.95, 0, 1)
    cb = fit(Task(mlp()), loader(x, y), callback=tripwire(interval=2), max_steps=40)
    assert [f.rule for f in cb.findings if f.rule == "class_imbalance"][:1] == ["class_imbalance"]
