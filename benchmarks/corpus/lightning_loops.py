"""Trainings that stress the loop rather than the architecture, with Lightning: gradient
accumulation, a 3000-step cosine run, a sigmoid MLP, an image autoencoder and a GAN with two
optimizers stepped by hand (manual optimization)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.data import blobs, images
from corpus.registry import CORPUS


def _mlp(make_callback: Callable[..., Any], *, steps: int, lr: float, act: str, depth: int, width: int = 64,
         rows: int = 4096, gain: float = 1.0, optimizer: str = "adamw", val_every: int | None = None,
         schedule: bool = True, **trainer_args: Any) -> Any:
    """An MLP on 16-feature blobs (4 classes); ``gain`` scales the initial weights."""
    import torch
    from torch import nn

    from corpus import lightning_kit as kit

    kit.seeded()
    x, y = blobs(rows, seed=0)
    xv, yv = blobs(1024, seed=1)
    layers: list[nn.Module] = []
    width_in = x.shape[1]
    for _ in range(depth):
        layers += [nn.Linear(width_in, width), {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU}[act]()]
        width_in = width
    layers.append(nn.Linear(width_in, 4))
    net = nn.Sequential(*layers)
    if gain != 1.0:
        with torch.no_grad():
            for layer in net:
                if isinstance(layer, nn.Linear):
                    layer.weight.mul_(gain)
    task = kit.Classifier(net, lr, optimizer=optimizer, schedule=kit.cosine if schedule else None, total_steps=steps)
    return kit.fit(task, kit.loader(x, y, 32), kit.loader(xv, yv, 1024, shuffle=False), make_callback,
                   max_steps=steps, val_every=val_every, **trainer_args)


def _autoencoder(make_callback: Callable[..., Any], *, steps: int, lr: float, gain: float = 1.0) -> Any:
    import lightning.pytorch as pl
    import torch
    from torch import nn

    from corpus import lightning_kit as kit

    class AutoEncoder(pl.LightningModule):
        """Conv encoder to a 32-d code (tanh), transposed-conv decoder, sigmoid output, BCE loss."""

        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                                         nn.Flatten(), nn.Linear(32 * 16, 32), nn.Tanh())
            self.decoder = nn.Sequential(nn.Linear(32, 32 * 16), nn.ReLU(), nn.Unflatten(1, (32, 4, 4)),
                                         nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(),
                                         nn.ConvTranspose2d(16, 3, 4, 2, 1), nn.Sigmoid())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decoder(self.encoder(x))

        def training_step(self, batch, batch_idx):
            x, _ = batch
            return nn.functional.binary_cross_entropy(self(x), x)

        def validation_step(self, batch, batch_idx):
            x, _ = batch
            self.log("val_loss", nn.functional.binary_cross_entropy(self(x), x))

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=lr)

    kit.seeded()
    x, y = images(1024, 16, 4, seed=0)
    xv, yv = images(256, 16, 4, seed=1)
    model = AutoEncoder()
    if gain != 1.0:  # the code layer's weights scaled up: its tanh starts (and stays) saturated
        with torch.no_grad():
            model.encoder[5].weight.mul_(gain)
    return kit.fit(model, kit.loader(x, y, 32), kit.loader(xv, yv, 256, shuffle=False), make_callback,
                   max_steps=steps)


def _gan(make_callback: Callable[..., Any], *, steps: int, generator_params: str = "generator") -> Any:
    import lightning.pytorch as pl
    import torch
    from torch import nn

    from corpus import lightning_kit as kit

    class GAN(pl.LightningModule):
        """An MLP GAN on a ring of 8 Gaussians; the discriminator and the generator take turns,
        each with its own Adam, stepped in ``training_step`` (manual optimization)."""

        def __init__(self) -> None:
            super().__init__()
            self.automatic_optimization = False
            self.generator = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
            self.discriminator = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 64),
                                               nn.LeakyReLU(0.2), nn.Linear(64, 1))

        def training_step(self, batch, batch_idx):
            real, _ = batch
            opt_d, opt_g = self.optimizers()
            bce = nn.functional.binary_cross_entropy_with_logits
            fake = self.generator(torch.randn(len(real), 8))
            ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
            d_loss = bce(self.discriminator(real), ones) + bce(self.discriminator(fake.detach()), zeros)
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            opt_d.step()
            g_loss = bce(self.discriminator(fake), ones)
            opt_g.zero_grad()
            self.manual_backward(g_loss)
            opt_g.step()
            return g_loss

        def configure_optimizers(self):
            g = getattr(self, generator_params)
            return (torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
                    torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999)))

    kit.seeded()
    g = torch.Generator().manual_seed(0)
    angle = torch.randint(0, 8, (4096,), generator=g) * (2 * torch.pi / 8)
    ring = torch.stack([torch.cos(angle), torch.sin(angle)], 1) * 2 + 0.05 * torch.randn(4096, 2, generator=g)
    return kit.fit(GAN(), kit.loader(ring, torch.zeros(4096, dtype=torch.long), 64), None, make_callback,
                   max_steps=steps)


ACCUMULATION = CORPUS.healthy(
    "lightning/tanh_mlp_accumulate", "lightning",
    "MLP 16-64-64-4 with tanh, gradient accumulation over 4 batches (accumulate_grad_batches=4); AdamW 3e-3, cosine; "
    "250 optimizer steps",
    lambda mc: _mlp(mc, steps=250, lr=3e-3, act="tanh", depth=2, accumulate_grad_batches=4))
CORPUS.twin(ACCUMULATION, "saturating_init", "initial weights x8 (tanh units start saturated)",
            ["tanh_saturation", "poor_initialization"],
            lambda mc: _mlp(mc, steps=250, lr=3e-3, act="tanh", depth=2, gain=8.0, accumulate_grad_batches=4))

COSINE = CORPUS.healthy(
    "lightning/cosine_3000", "lightning",
    "MLP 16-64-64-4 with ReLU on 16384 rows, 3000 steps, AdamW 3e-3 with cosine annealing to 0, validation every "
    "100 steps",
    lambda mc: _mlp(mc, steps=3000, lr=3e-3, act="relu", depth=2, rows=16384, val_every=100))
CORPUS.twin(COSINE, "tiny_subset", "trained on 64 rows instead of 16384 (memorizes them)",
            ["overfit", "overtraining"],
            lambda mc: _mlp(mc, steps=3000, lr=3e-3, act="relu", depth=2, rows=64, val_every=100))

SIGMOID = CORPUS.healthy(
    "lightning/sigmoid_mlp", "lightning",
    "MLP with 3 sigmoid hidden layers (width 64, PyTorch's default init); Adam 3e-3, constant; 600 steps",
    lambda mc: _mlp(mc, steps=600, lr=3e-3, act="sigmoid", depth=3, optimizer="adam", schedule=False))
CORPUS.twin(SIGMOID, "deep_stack", "12 sigmoid hidden layers instead of 3, plain SGD", ["vanishing_gradient"],
            lambda mc: _mlp(mc, steps=600, lr=3e-3, act="sigmoid", depth=12, optimizer="sgd", schedule=False))

AUTOENCODER = CORPUS.healthy(
    "lightning/autoencoder", "lightning",
    "conv autoencoder, 32-d tanh code, sigmoid output, BCE on [0,1] images (clipped: many pixels at 0 or 1); "
    "AdamW 2e-3; 400 steps",
    lambda mc: _autoencoder(mc, steps=400, lr=2e-3))
CORPUS.twin(AUTOENCODER, "saturated_code", "the code layer's initial weights x30 (its tanh saturates)",
            ["tanh_saturation", "poor_initialization"], lambda mc: _autoencoder(mc, steps=400, lr=2e-3, gain=30.0))

GAN = CORPUS.healthy(
    "lightning/gan", "lightning",
    "MLP GAN on a ring of 8 Gaussians, discriminator and generator alternating with their own Adam "
    "(manual optimization, two optimizer steps per batch); 1500 batches",
    lambda mc: _gan(mc, steps=3000))
CORPUS.twin(GAN, "generator_not_optimized", "the generator's optimizer is built over the discriminator's "
            "parameters: the generator keeps gradients but never changes", ["unchanged_tensor"],
            lambda mc: _gan(mc, steps=3000, generator_params="discriminator"))
