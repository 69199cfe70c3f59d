"""Keras models built by hand from the standard blocks (TensorFlow backend): a BatchNorm ResNet
fed 0-255 pixels through a ``Rescaling`` layer (as Keras' image tutorials do), MobileNetV3 bneck
blocks (depthwise, squeeze-excitation, hard-swish) and an embedding text classifier."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.data import images, token_classes
from corpus.labels import collapse_labels, swap_labels
from corpus.registry import CORPUS

SIZE, CLASSES = 16, 4


def resnet(keras: Any) -> Any:
    """Rescaling(1/255), a conv stem and three BatchNorm basic blocks (16-32-64), pooling, softmax."""
    layers = keras.layers
    bn = layers.BatchNormalization

    def block(x: Any, filters: int, stride: int) -> Any:
        shortcut = x
        y = layers.Conv2D(filters, 3, stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(bn()(y))
        y = bn()(layers.Conv2D(filters, 3, padding="same", use_bias=False)(y))
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = bn()(layers.Conv2D(filters, 1, stride, use_bias=False)(shortcut))
        return layers.ReLU()(layers.Add()([y, shortcut]))

    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.ReLU()(bn()(layers.Conv2D(16, 3, padding="same", use_bias=False)(x)))
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        x = block(x, filters, stride)
    outputs = layers.Dense(CLASSES, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def mobilenet_v3(keras: Any) -> Any:
    """A stem and four bneck blocks: 1x1 expand, depthwise, squeeze-excitation (ReLU, hard-sigmoid),
    1x1 linear projection, BatchNorm (momentum 0.9: moving statistics that keep up with a short
    run), hard-swish, residual where shapes allow."""
    layers = keras.layers

    def bn() -> Any:
        return layers.BatchNormalization(momentum=0.9)

    def bneck(x: Any, expand: int, out: int, kernel: int, stride: int) -> Any:
        y = layers.Activation("hard_swish")(bn()(layers.Conv2D(expand, 1, use_bias=False)(x)))
        y = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False)(y)
        y = layers.Activation("hard_swish")(bn()(y))
        se = layers.GlobalAveragePooling2D(keepdims=True)(y)
        se = layers.Conv2D(expand // 4, 1, activation="relu")(se)
        se = layers.Conv2D(expand, 1, activation="hard_sigmoid")(se)
        y = layers.Multiply()([y, se])
        y = bn()(layers.Conv2D(out, 1, use_bias=False)(y))
        return layers.Add()([x, y]) if stride == 1 and x.shape[-1] == out else y

    inputs = keras.Input((SIZE, SIZE, 3))
    x = layers.Activation("hard_swish")(bn()(
        layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    for expand, out, kernel, stride in ((48, 24, 3, 2), (72, 24, 3, 1), (96, 40, 5, 2), (120, 40, 5, 1)):
        x = bneck(x, expand, out, kernel, stride)
    x = layers.Dropout(0.2)(layers.Dense(64, activation="hard_swish")(layers.GlobalAveragePooling2D()(x)))
    return keras.Model(inputs, layers.Dense(CLASSES, activation="softmax")(x))


def _images(make_callback: Callable[..., Any], net: Callable[[Any], Any], *, epochs: int, lr: float = 1e-3,
            pixels: float = 1.0, labels: str = "") -> Any:
    import keras

    from corpus import keras_kit as kit

    kit.seeded()
    x, y = images(1024, SIZE, CLASSES, seed=0, channels_last=True)
    xv, yv = images(256, SIZE, CLASSES, seed=1, channels_last=True)
    if labels == "collapsed":
        y = collapse_labels(y)
    return kit.fit(net(keras), x * pixels, y, (xv * pixels, yv), make_callback, epochs=epochs,
                   optimizer=keras.optimizers.Adam(lr))


def _text(make_callback: Callable[..., Any], *, epochs: int, swap_val: bool = False) -> Any:
    import keras

    from corpus import keras_kit as kit

    kit.seeded()
    x, y = token_classes(2048, 32, 200, 0.25, seed=0)
    xv, yv = token_classes(256, 32, 200, 0.25, seed=1)
    if swap_val:
        yv = swap_labels(yv)
    layers = keras.layers
    model = keras.Sequential([keras.Input((32,), dtype="int32"), layers.Embedding(200, 32, mask_zero=True),
                              layers.GlobalAveragePooling1D(), layers.Dense(32, activation="relu"),
                              layers.Dense(2, activation="softmax")])
    return kit.fit(model, x, y, (xv, yv), make_callback, epochs=epochs, optimizer=keras.optimizers.Adam(2e-3))


RESNET = CORPUS.healthy(
    "keras/resnet_rescaling", "keras",
    "Keras ResNet basic blocks (BatchNorm, 16-32-64) behind Rescaling(1/255), fed 0-255 pixels; Adam 1e-3; "
    "8 epochs of 32 steps",
    lambda mc: _images(mc, resnet, epochs=8, pixels=255.0))
CORPUS.twin(RESNET, "collapsed_labels", "96% of the labels of classes 1-3 fell back to class 0",
            ["class_imbalance"], lambda mc: _images(mc, resnet, epochs=8, pixels=255.0, labels="collapsed"))

MOBILENET = CORPUS.healthy(
    "keras/mobilenet_v3_blocks", "keras",
    "Keras MobileNetV3 bneck blocks (depthwise, squeeze-excitation, hard-swish, BatchNorm, dropout) on [0, 1] pixels; "
    "Adam 2e-3; 8 epochs of 32 steps",
    lambda mc: _images(mc, mobilenet_v3, epochs=8, lr=2e-3))
CORPUS.twin(MOBILENET, "lr_x100", "learning rate x100 (0.2); a BatchNorm ReLU net dies rather than explodes",
            ["exploding_gradient", "nonfinite", "dead_relu"],
            lambda mc: _images(mc, mobilenet_v3, epochs=8, lr=0.2))

TEXT = CORPUS.healthy(
    "keras/embedding_text", "keras",
    "Keras Embedding(mask_zero) + average pooling + Dense text classifier on padded token ids (25% pads); "
    "Adam 2e-3; 6 epochs of 64 steps",
    lambda mc: _text(mc, epochs=6))
CORPUS.twin(TEXT, "swapped_val_labels", "the two classes' labels are exchanged in the validation set",
            ["classifier_confusion"], lambda mc: _text(mc, epochs=6, swap_val=True))
