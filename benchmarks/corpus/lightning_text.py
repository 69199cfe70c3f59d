"""Text models from ``transformers`` (random weights, small configs) trained with Lightning on
synthetic token data: BERT and DistilBERT sequence classification with BERT's warm-up and
linear decay, and a GPT-2 causal language model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.data import markov_text, token_classes
from corpus.labels import swap_labels
from corpus.registry import CORPUS

VOCAB, LENGTH = 200, 32


def _classify(make_callback: Callable[..., Any], net: Callable[[], Any], *, steps: int, lr: float,
              pad_share: float = 0.25, swap_val: bool = False) -> Any:
    import torch
    from torch import nn

    from corpus import lightning_kit as kit

    class MaskedPads(nn.Module):
        """Runs a sequence classifier with the attention mask of its pad tokens (id 0)."""

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, ids: torch.Tensor) -> Any:
            return self.model(input_ids=ids, attention_mask=(ids != 0).long())

    kit.seeded()
    x, y = token_classes(2048, LENGTH, VOCAB, pad_share, seed=0)
    xv, yv = token_classes(256, LENGTH, VOCAB, pad_share, seed=1)
    if swap_val:
        yv = swap_labels(yv)
    task = kit.Classifier(MaskedPads(net()), lr, weight_decay=0.01, schedule=kit.warmup_linear(0.1),
                          total_steps=steps)
    return kit.fit(task, kit.loader(x, y, 32), kit.loader(xv, yv, 256, shuffle=False), make_callback,
                   max_steps=steps, val_every=50)


def bert() -> Any:
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2,
                                                    num_attention_heads=4, intermediate_size=128,
                                                    max_position_embeddings=LENGTH, num_labels=2))


def distilbert() -> Any:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4,
                                                                hidden_dim=128, max_position_embeddings=LENGTH,
                                                                num_labels=2))


def _gpt2(make_callback: Callable[..., Any], *, steps: int, lr: float, init_range: float = 0.02) -> Any:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader
    from transformers import GPT2Config, GPT2LMHeadModel

    from corpus import lightning_kit as kit

    class CausalLM(pl.LightningModule):
        """Next-token prediction on ``{"input_ids", "labels"}`` batches, as Hugging Face feeds them."""

        def __init__(self) -> None:
            super().__init__()
            self.model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=64, n_layer=2, n_head=4, n_positions=LENGTH,
                                                    initializer_range=init_range))

        def training_step(self, batch, batch_idx):
            return self.model(**batch).loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self.model(**batch).loss)

        def configure_optimizers(self):
            opt = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.01)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": kit.warmup_linear(0.1)(opt, steps),
                                                       "interval": "step"}}

    def batches(ids: Any, batch_size: int, shuffle: bool) -> DataLoader:
        rows = [{"input_ids": torch.as_tensor(r), "labels": torch.as_tensor(r)} for r in ids]
        return DataLoader(rows, batch_size=batch_size, shuffle=shuffle,
                          generator=torch.Generator().manual_seed(0) if shuffle else None)

    kit.seeded()
    return kit.fit(CausalLM(), batches(markov_text(2048, LENGTH, 64, seed=0), 32, True),
                   batches(markov_text(256, LENGTH, 64, seed=1), 128, False), make_callback, max_steps=steps,
                   val_every=50)


BERT = CORPUS.healthy(
    "lightning/bert", "lightning",
    "HF BERT sequence classification, 2 layers, width 64, attention mask over pads (25%); AdamW 5e-4, "
    "linear warm-up 10% + linear decay; 400 steps",
    lambda mc: _classify(mc, bert, steps=400, lr=5e-4))
CORPUS.twin(BERT, "mostly_padding", "texts padded to 4x their length (75% of the tokens are pads)",
            ["token_ratio"], lambda mc: _classify(mc, bert, steps=400, lr=5e-4, pad_share=0.75))

DISTILBERT = CORPUS.healthy(
    "lightning/distilbert", "lightning",
    "HF DistilBERT sequence classification, 2 layers, width 64; AdamW 5e-4, linear warm-up 10% + linear decay; "
    "400 steps",
    lambda mc: _classify(mc, distilbert, steps=400, lr=5e-4))
CORPUS.twin(DISTILBERT, "swapped_val_labels", "the two classes' labels are exchanged in the validation set",
            ["classifier_confusion"], lambda mc: _classify(mc, distilbert, steps=400, lr=5e-4, swap_val=True))

GPT2 = CORPUS.healthy(
    "lightning/gpt2", "lightning",
    "HF GPT-2 causal LM, 2 layers, width 64, vocabulary 64, on bigram text with Zipf-like token frequencies; "
    "AdamW 1e-3, warm-up 10% + linear decay; 400 steps",
    lambda mc: _gpt2(mc, steps=400, lr=1e-3))
CORPUS.twin(GPT2, "init_range_1", "initializer_range 1.0 instead of 0.02 (a typo in the config)",
            ["poor_initialization"], lambda mc: _gpt2(mc, steps=400, lr=1e-3, init_range=1.0))
