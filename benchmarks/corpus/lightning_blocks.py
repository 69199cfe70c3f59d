"""Standard architectures written out in torch (no ``transformers`` needed), trained with
Lightning: recurrent classifiers (LSTM, GRU), a BatchNorm ResNet under bf16 autocast and a
MobileNetV3-style net at batch size 8."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.data import images, sequences
from corpus.registry import CORPUS


def _recurrent(make_callback: Callable[..., Any], cell: str, *, steps: int, lr: float, raw_units: bool = False,
               clip: float | None = 1.0) -> Any:
    from corpus import lightning_kit as kit
    from corpus.torch_blocks import RecurrentClassifier

    kit.seeded()
    x, y = sequences(2048, seed=0)
    xv, yv = sequences(512, seed=1)
    if raw_units:  # sensor readings in their own units: offset 250, spread x40
        x, xv = 250 + 40 * x, 250 + 40 * xv
    task = kit.Classifier(RecurrentClassifier(x.shape[-1], 3, cell), lr, schedule=kit.cosine, total_steps=steps)
    extra = {} if clip is None else {"gradient_clip_val": clip}
    return kit.fit(task, kit.loader(x, y, 32), kit.loader(xv, yv, 512, shuffle=False), make_callback,
                   max_steps=steps, **extra)


def _images(make_callback: Callable[..., Any], net: Callable[[], Any], *, steps: int, lr: float, batch_size: int,
            optimizer: str = "adamw", weight_decay: float = 0.0, dead_bias: str | None = None,
            **trainer_args: Any) -> Any:
    import torch

    from corpus import lightning_kit as kit

    kit.seeded()
    x, y = images(1024, 16, 4, seed=0)
    xv, yv = images(256, 16, 4, seed=1)
    model = net()
    if dead_bias:  # the bias before one ReLU set to -20 (an init or a loaded checkpoint gone wrong)
        with torch.no_grad():
            bn = model.get_submodule(dead_bias)
            bn.bias.fill_(-20.0)
    task = kit.Classifier(model, lr, optimizer=optimizer, weight_decay=weight_decay, schedule=kit.cosine,
                          total_steps=steps)
    return kit.fit(task, kit.loader(x, y, batch_size), kit.loader(xv, yv, 256, shuffle=False), make_callback,
                   max_steps=steps, **trainer_args)


def resnet() -> Any:
    from corpus.torch_blocks import ResNetSmall

    return ResNetSmall()


def mobilenet_v3() -> Any:
    from corpus.torch_blocks import MobileNetV3Small

    return MobileNetV3Small()


LSTM = CORPUS.healthy(
    "lightning/lstm", "lightning",
    "2-layer LSTM (hidden 48) classifying noisy oscillations by frequency; AdamW 3e-3, cosine, gradient clipping 1.0; "
    "300 steps",
    lambda mc: _recurrent(mc, "lstm", steps=300, lr=3e-3))
CORPUS.twin(LSTM, "raw_units", "inputs in raw sensor units (offset 250, spread x40) instead of standardized",
            ["not_normalized"], lambda mc: _recurrent(mc, "lstm", steps=300, lr=3e-3, raw_units=True))

GRU = CORPUS.healthy(
    "lightning/gru", "lightning",
    "2-layer GRU (hidden 48) on the same sequences; AdamW 3e-3, cosine, no clipping; 300 steps",
    lambda mc: _recurrent(mc, "gru", steps=300, lr=3e-3, clip=None))
CORPUS.twin(GRU, "lr_1e-9", "learning rate 1e-9", ["small_updates"],
            lambda mc: _recurrent(mc, "gru", steps=300, lr=1e-9, clip=None))

RESNET_BF16 = CORPUS.healthy(
    "lightning/resnet_bf16", "lightning",
    "ResNet basic blocks (BatchNorm, 16-32-64) under bf16 autocast on CPU (precision='bf16-mixed'); "
    "SGD 0.05 momentum, weight decay 5e-4, cosine; 120 steps (bf16 convolutions are slow on CPU)",
    lambda mc: _images(mc, resnet, steps=120, lr=0.05, batch_size=32, optimizer="sgd", weight_decay=5e-4,
                       precision="bf16-mixed"))
CORPUS.twin(RESNET_BF16, "dead_stage", "the BatchNorm bias before the first block's ReLU set to -20",
            ["dead_relu"],
            lambda mc: _images(mc, resnet, steps=120, lr=0.05, batch_size=32, optimizer="sgd", weight_decay=5e-4,
                               precision="bf16-mixed", dead_bias="stages.0.bn1"))

MOBILENET_V3 = CORPUS.healthy(
    "lightning/mobilenet_v3_batch8", "lightning",
    "MobileNetV3-style bneck blocks (squeeze-excitation, hard-swish, BatchNorm) at batch size 8; AdamW 2e-3, cosine; "
    "500 steps",
    lambda mc: _images(mc, mobilenet_v3, steps=500, lr=2e-3, batch_size=8))
CORPUS.twin(MOBILENET_V3, "lr_x100", "learning rate x100 (0.2); a BatchNorm net dies rather than explodes",
            ["exploding_gradient", "nonfinite", "dead_relu"],
            lambda mc: _images(mc, mobilenet_v3, steps=500, lr=0.2, batch_size=8))
