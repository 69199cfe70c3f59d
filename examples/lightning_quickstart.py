"""tripwire + PyTorch Lightning in one file: a healthy run, then a run with dead ReLUs that stops itself.

    python examples/lightning_quickstart.py

Runs on CPU in a few seconds with synthetic data. The rules are in ``tripwire.yaml`` beside
this file; the run records go to ``tripwire_runs/`` (``tripwire report tripwire_runs/<run>``
turns one into an HTML page).
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tripwire import LightningTripwire

CONFIG = Path(__file__).with_name("tripwire.yaml")


class Classifier(pl.LightningModule):
    def __init__(self, dead_relus: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 4))
        if dead_relus:  # the planted fault: a bias so negative that no unit of the first layer fires
            nn.init.constant_(self.net[0].bias, -25.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))  # logits from self(x): confusion for free

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def data(n: int, seed: int) -> DataLoader:
    """Four Gaussian classes in 16 standardized features."""
    centers = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    x = centers[y] + torch.randn(n, 16, generator=g)
    return DataLoader(TensorDataset((x - x.mean(0)) / x.std(0), y), batch_size=64, shuffle=seed == 1)


def run(dead_relus: bool, max_steps: int = 300, log_dir: str | None = None) -> LightningTripwire:
    tripwire = LightningTripwire(CONFIG, log_dir=log_dir)
    trainer = pl.Trainer(max_steps=max_steps, accelerator="cpu", callbacks=[tripwire], logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, val_check_interval=50)
    trainer.fit(Classifier(dead_relus), data(4096, seed=1), data(512, seed=2))
    print(f"{'dead ReLUs' if dead_relus else 'healthy'}: {trainer.global_step} steps, "
          f"{len(tripwire.findings)} finding(s), stopped by: {tripwire.stopped_by and tripwire.stopped_by.rule}")
    for finding in tripwire.findings:
        print("  ", finding)
    return tripwire


if __name__ == "__main__":
    torch.manual_seed(0)
    run(dead_relus=False)
    run(dead_relus=True)
