"""Image classifiers from ``transformers`` (random weights, small configs) trained with Lightning
on synthetic 16x16 gratings: ResNet (BatchNorm), MobileNetV2 and ViT.

``EfficientNetForImageClassification`` is left out: built from a config, with the library's own
initialization (normal, std 0.02, for every conv), it does not train at all here (the loss stays at
ln 4 from the first step); EfficientNet is in the corpus through ``keras.applications``.
``ConvNextForImageClassification`` (layer scale 1e-6 or 0.1, patch 1 or 2) does not learn these
images within 300 steps either, so a finding on it could not be judged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.data import images
from corpus.labels import collapse_labels
from corpus.registry import CORPUS

SIZE, CLASSES = 16, 4


def _train(make_callback: Callable[..., Any], net: Callable[[], Any], *, steps: int, lr: float,
           optimizer: str = "adamw", weight_decay: float = 0.0, scale: float = 1.0, labels: str = "",
           train_only: str | None = None, batch_size: int = 32, warmup: float = 0.0, constant_lr: bool = False,
           ) -> Any:
    from corpus import lightning_kit as kit

    kit.seeded()
    x, y = images(1024, SIZE, CLASSES, seed=0)
    xv, yv = images(256, SIZE, CLASSES, seed=1)
    if labels == "collapsed":
        y = collapse_labels(y)
    schedule = None if constant_lr else kit.warmup_cosine(warmup) if warmup else kit.cosine
    task = kit.Classifier(net(), lr, optimizer=optimizer, weight_decay=weight_decay, schedule=schedule,
                          total_steps=steps, train_only=train_only)
    return kit.fit(task, kit.loader(x * scale, y, batch_size), kit.loader(xv * scale, yv, 256, shuffle=False),
                   make_callback, max_steps=steps)


def resnet() -> Any:
    from transformers import ResNetConfig, ResNetForImageClassification

    return ResNetForImageClassification(ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 64, 64],
                                                     depths=[1, 1, 1, 1], layer_type="basic", num_labels=CLASSES))


def mobilenet_v2() -> Any:
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    return MobileNetV2ForImageClassification(MobileNetV2Config(num_channels=3, image_size=SIZE, depth_multiplier=0.35,
                                                               output_stride=8, classifier_dropout_prob=0.0,
                                                               num_labels=CLASSES))


def vit() -> Any:
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(image_size=SIZE, patch_size=4, num_channels=3, hidden_size=64,
                                               num_hidden_layers=3, num_attention_heads=4, intermediate_size=128,
                                               num_labels=CLASSES))


RESNET = CORPUS.healthy(
    "lightning/resnet", "lightning",
    "HF ResNet, 4 basic-block stages with BatchNorm; SGD 0.05 momentum, weight decay 5e-4, cosine; 400 steps",
    lambda mc: _train(mc, resnet, steps=400, lr=0.05, optimizer="sgd", weight_decay=5e-4))
CORPUS.twin(RESNET, "lr_x100", "learning rate x100 (5.0); a BatchNorm ReLU net dies rather than explodes (its "
            "weights grow, the effective step shrinks, the ReLUs go dark)",
            ["exploding_gradient", "nonfinite", "dead_relu"],
            lambda mc: _train(mc, resnet, steps=400, lr=5.0, optimizer="sgd", weight_decay=5e-4))

MOBILENET = CORPUS.healthy(
    "lightning/mobilenet_v2", "lightning",
    "HF MobileNetV2 (width 0.35, output stride 8, ReLU6, BatchNorm); AdamW 3e-3, constant; 200 steps",
    lambda mc: _train(mc, mobilenet_v2, steps=200, lr=3e-3, constant_lr=True))
CORPUS.twin(MOBILENET, "frozen_backbone", "only the classifier is given to the optimizer: the backbone keeps "
            "requires_grad and gradients but never changes", ["unchanged_tensor"],
            lambda mc: _train(mc, mobilenet_v2, steps=200, lr=3e-3, constant_lr=True, train_only="classifier"))

VIT = CORPUS.healthy(
    "lightning/vit", "lightning",
    "HF ViT, 3 layers, width 64, 4x4 patches; AdamW 1e-3, weight decay 0.05, warm-up 10% + cosine; 400 steps",
    lambda mc: _train(mc, vit, steps=400, lr=1e-3, weight_decay=0.05, warmup=0.1))
CORPUS.twin(VIT, "collapsed_labels", "96% of the labels of classes 1-3 fell back to class 0",
            ["class_imbalance"],
            lambda mc: _train(mc, vit, steps=400, lr=1e-3, weight_decay=0.05, warmup=0.1, labels="collapsed"))
