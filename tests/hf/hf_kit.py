"""A tiny BERT built from a config (nothing downloaded) and a learnable synthetic task for the
Hugging Face Trainer tests: is token 7 in the sequence? Seconds of CPU per run."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

MARK = 7  # the token whose presence is the label
LENGTH = 8


def bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        vocab_size=100, max_position_embeddings=LENGTH, num_labels=2)
    return BertForSequenceClassification(config)


def examples(n: int, seed: int = 0, positive: float = 0.5) -> list[dict[str, torch.Tensor]]:
    """``n`` sequences of tokens 1..99 (no padding id 0); a ``positive`` share hold token 7 once."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(8, 100, (n, LENGTH), generator=g)
    labels = (torch.rand(n, generator=g) < positive).long()
    where = torch.randint(0, LENGTH, (n,), generator=g)
    ids[labels == 1, where[labels == 1]] = MARK
    return [{"input_ids": i, "attention_mask": torch.ones(LENGTH, dtype=torch.long), "labels": y}
            for i, y in zip(ids, labels)]


def train(callbacks: list, tmp_path, *, steps: int = 200, lr: float = 1e-3, model=None, train_set=None,
          eval_steps: int | None = 50, compute_loss_func=None, **overrides) -> Trainer:
    """Fine-tune ``model`` (default: :func:`bert`) for ``steps`` optimizer steps on CPU; ``overrides``
    go to ``TrainingArguments``."""
    settings = {"per_device_train_batch_size": 32, "per_device_eval_batch_size": 64, "logging_steps": 25,
                "lr_scheduler_type": "constant", "save_strategy": "no", "disable_tqdm": True, **overrides}
    args = TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[], max_steps=steps,
                             learning_rate=lr, eval_strategy="steps" if eval_steps else "no", eval_steps=eval_steps,
                             dataloader_num_workers=0, seed=0, **settings)
    trainer = Trainer(model=model or bert(), args=args, train_dataset=train_set or examples(2048),
                      eval_dataset=examples(256, seed=1), callbacks=callbacks, compute_loss_func=compute_loss_func)
    trainer.train()
    return trainer


def tripwire_entries(trainer: Trainer) -> list[dict]:
    """The findings the callback put into the Trainer's log history."""
    return [entry["tripwire"] for entry in trainer.state.log_history if "tripwire" in entry]
