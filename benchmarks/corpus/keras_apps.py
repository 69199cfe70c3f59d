"""``keras.applications`` models with ``weights=None`` (TensorFlow backend), at 32x32 and four
classes, on synthetic gratings given as 0-255 pixels the way each model's documentation asks:
MobileNetV3Small and EfficientNetB0 rescale inside the model, ResNet50 takes
``keras.applications.resnet50.preprocess_input`` (caffe-style, mean-subtracted BGR).

These are slow entries (``--slow``): on the 2-core development machine TensorFlow spends 160-200 s
compiling one train step of these 150-250-layer models, and tripwire's sampled step compiles a
second one, so a run takes 5-10 minutes however few steps it trains. The fast Keras entries
build the same blocks by hand (``keras_blocks.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from corpus.data import images
from corpus.registry import CORPUS

SIZE, CLASSES = 32, 4
SLOW = "TensorFlow compiles each train function of a 150-250-layer model for minutes on 2 cores"


def _train(make_callback: Callable[..., Any], app: str, *, epochs: int, lr: float = 1e-3, labels: str = "",
           swap_val: bool = False, n: int = 512) -> Any:
    import keras

    from corpus import keras_kit as kit
    from corpus.labels import collapse_labels, swap_labels

    kit.seeded()
    x, y = images(n, SIZE, CLASSES, seed=0, channels_last=True)
    xv, yv = images(128, SIZE, CLASSES, seed=1, channels_last=True)
    x, xv = x * 255.0, xv * 255.0
    if labels == "collapsed":
        y = collapse_labels(y)
    if swap_val:
        yv = swap_labels(yv)
    shape = (SIZE, SIZE, 3)
    if app == "mobilenet_v3":
        model = keras.applications.MobileNetV3Small(input_shape=shape, weights=None, classes=CLASSES,
                                                    minimalistic=False, include_preprocessing=True)
    elif app == "efficientnet":
        model = keras.applications.EfficientNetB0(input_shape=shape, weights=None, classes=CLASSES)
    else:
        preprocess = keras.applications.resnet50.preprocess_input
        x, xv = preprocess(x.copy()), preprocess(xv.copy())
        model = keras.applications.ResNet50(input_shape=shape, weights=None, classes=CLASSES)
    return kit.fit(model, x, y, (xv, yv), make_callback, epochs=epochs, optimizer=keras.optimizers.Adam(lr),
                   batch_size=32)


MOBILENET = CORPUS.healthy(
    "keras/mobilenet_v3_small", "keras",
    "keras.applications.MobileNetV3Small (weights=None, in-model rescaling of 0-255 pixels, hard-swish, SE, "
    "BatchNorm, dropout); Adam 1e-3; 8 epochs of 16 steps",
    lambda mc: _train(mc, "mobilenet_v3", epochs=8), slow=SLOW)
CORPUS.twin(MOBILENET, "lr_x100", "learning rate x100 (0.1); a BatchNorm ReLU net dies rather than explodes",
            ["exploding_gradient", "nonfinite", "dead_relu"],
            lambda mc: _train(mc, "mobilenet_v3", epochs=8, lr=0.1))

RESNET50 = CORPUS.healthy(
    "keras/resnet50", "keras",
    "keras.applications.ResNet50 (weights=None, 23.6M parameters, BatchNorm) on resnet50.preprocess_input pixels; "
    "Adam 1e-3; 3 epochs of 16 steps",
    lambda mc: _train(mc, "resnet50", epochs=3), slow=SLOW)
CORPUS.twin(RESNET50, "collapsed_labels", "96% of the labels of classes 1-3 fell back to class 0",
            ["class_imbalance"], lambda mc: _train(mc, "resnet50", epochs=3, labels="collapsed"))

EFFICIENTNET = CORPUS.healthy(
    "keras/efficientnet_b0", "keras",
    "keras.applications.EfficientNetB0 (weights=None, in-model rescaling and normalization, swish, SE, BatchNorm, "
    "dropout); Adam 1e-3; 4 epochs of 16 steps",
    lambda mc: _train(mc, "efficientnet", epochs=4), slow=SLOW)
CORPUS.twin(EFFICIENTNET, "swapped_val_labels", "classes 0 and 1 exchanged in the validation labels",
            ["classifier_confusion"], lambda mc: _train(mc, "efficientnet", epochs=4, swap_val=True))
