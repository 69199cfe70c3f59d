"""Hugging Face Trainer quickstart: add TripwireCallback to a Trainer fine-tuning a tiny BERT.

The model is built from a config (nothing is downloaded) and learns a synthetic task: is token 7
in the sequence? The first run is healthy and stays silent with the default rules. The second is
broken on purpose, with a learning rate of 1e-9: tripwire reports that the weights barely move
(``small_updates``) and stops the Trainer 20 steps in instead of running all 300.

Run:
    pip install -e ".[transformers]"
    python examples/hf_trainer_quickstart.py
"""

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from tripwire.transformers import TripwireCallback


def dataset(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    ids, labels = torch.randint(8, 100, (n, 8), generator=g), torch.randint(0, 2, (n,), generator=g)
    ids[labels == 1, 0] = 7  # the positive sequences hold token 7
    ids = ids[:, torch.randperm(8, generator=g)]
    return [{"input_ids": i, "labels": y} for i, y in zip(ids, labels)]


def fine_tune(learning_rate: float, tripwire: TripwireCallback) -> Trainer:
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                                     intermediate_size=64, vocab_size=100, num_labels=2))
    args = TrainingArguments("hf_quickstart_out", use_cpu=True, report_to=[], max_steps=300,
                             learning_rate=learning_rate, per_device_train_batch_size=32,
                             eval_strategy="steps", eval_steps=100,
                             save_strategy="no", logging_steps=100, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=dataset(4096, 0), eval_dataset=dataset(256, 1),
                      callbacks=[tripwire])
    trainer.train()
    return trainer


# 1. Healthy: the default rules (config=None) stay silent.
healthy = TripwireCallback()
fine_tune(1e-3, healthy)
assert healthy.findings == []

# 2. Broken: a learning rate of 1e-9, and small_updates set to stop training.
broken = TripwireCallback(stop_on=["small_updates"])
trainer = fine_tune(1e-9, broken)
print(f"\nstopped by {broken.stopped_by.rule} at step {broken.stopped_by.step} "
      f"(trainer.state.global_step = {trainer.state.global_step})")
for entry in trainer.state.log_history:  # the findings are in the Trainer's log history too
    if "tripwire" in entry:
        print(" -", entry["tripwire"]["message"])
