"""Keras cases of the compatibility matrix: every ``keras.layers`` class and every
``keras.applications`` family, each trained for 3 steps with and without ``KerasTripwire``.

Layers are found by enumerating ``keras.layers`` (public classes that subclass ``Layer``, each
class once, aliases listed with it) and built from their signature: required arguments come from
:data:`ARGS` by name (``units``, ``filters``, ``kernel_size``, ...), a layer with an
``activation`` argument gets ``relu`` (so the activation probes are exercised on every kind of
layer), and :data:`SPECIAL` builds what a signature cannot say (cells inside ``RNN``, wrapped
layers). The input is picked by what the layer needs (:func:`input_kind`): vectors, sequences,
images, volumes, integer ids. Each model is ``Input -> [Dense] -> layer -> Flatten -> Dense``:
the leading ``Dense`` (linear) only for layers without weights, so that gradients pass through
them; merge layers join two ``Dense`` branches; attention layers attend a sequence to itself.

Example:
    >>> cases = {c.name: c for c in layer_cases()}
    >>> cases["LSTM"].kind, cases["Conv2D"].kind, cases["Embedding"].kind
    ('seq', 'img', 'ints')
    >>> cases["RandomFlip"].na
    'preprocessing layer: runs in the input pipeline and holds no trainable weights'
"""

from __future__ import annotations

import contextlib
import inspect
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from _compat_core import (
    Outcome,
    Run,
    Warnings,
    default_config,
    differs,
    every_rule_config,
    findings_of,
    judge,
    keep_samples,
    missing_params,
    nudged,
    timed,
)
from tripwire import KerasTripwire
from tripwire.callbacks.keras.activations import FAMILY_OF_FUNCTION, FAMILY_OF_LAYER

BATCH, STEPS, CLASSES = 8, 3, 3
SHAPES: dict[str, tuple[int, ...]] = {
    "vector": (8,), "seq": (6, 5), "img": (8, 8, 3), "vol": (4, 4, 4, 2), "ints": (6,),
    "convlstm1d": (3, 6, 2), "convlstm2d": (3, 6, 6, 2), "convlstm3d": (2, 4, 4, 4, 1),
}
#: Required constructor arguments, by parameter name.
ARGS: dict[str, Any] = {
    "units": 4, "filters": 4, "kernel_size": 2, "pool_size": 2, "rate": 0.1, "stddev": 0.1, "output_size": 2,
    "num_heads": 2, "key_dim": 4, "head_dim": 4, "num_query_heads": 2, "num_key_value_heads": 1,
    "input_dim": 20, "output_dim": 4, "n": 2, "dims": (2, 1), "target_shape": (-1,), "activation": "relu",
    "equation": "ab,bc->ac", "output_shape": 4, "axes": -1,
}
#: Layers that need a layer or a cell to be built: what they get here.
SPECIAL: dict[str, Callable[[], Any]] = {
    "RNN": lambda: keras.layers.RNN(keras.layers.SimpleRNNCell(4)),
    "LSTMCell": lambda: keras.layers.RNN(keras.layers.LSTMCell(4)),
    "GRUCell": lambda: keras.layers.RNN(keras.layers.GRUCell(4)),
    "SimpleRNNCell": lambda: keras.layers.RNN(keras.layers.SimpleRNNCell(4)),
    "StackedRNNCells": lambda: keras.layers.RNN(keras.layers.StackedRNNCells(
        [keras.layers.LSTMCell(4), keras.layers.GRUCell(4)])),
    "Bidirectional": lambda: keras.layers.Bidirectional(keras.layers.LSTM(4)),
    "TimeDistributed": lambda: keras.layers.TimeDistributed(keras.layers.Dense(4, activation="relu")),
    "SpectralNormalization": lambda: keras.layers.SpectralNormalization(keras.layers.Dense(4, activation="relu")),
}
NOT_APPLICABLE: dict[str, str] = {
    "Layer": "the base class (a subclass with a call is every other case)",
    "Wrapper": "abstract base of the wrappers (Bidirectional, TimeDistributed, SpectralNormalization are cases)",
    "InputLayer": "the model input itself (every case has one)",
    "Lambda": "wraps a user function: no weights or activation of its own",
    "TFSMLayer": "loads a TensorFlow SavedModel from a file",
    "FlaxLayer": "wraps a Flax module (JAX backend only)",
    "JaxLayer": "wraps a JAX function (JAX backend only)",
    "TorchModuleWrapper": "wraps a torch module (torch backend only)",
}
MERGE = {"Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract"}
ATTENTION_LIST = {"Attention", "AdditiveAttention"}  # called on [query, value]
ATTENTION_ARGS = {"MultiHeadAttention", "GroupQueryAttention"}  # called as (query, value)
#: The smallest model of each ``keras.applications`` family and the smallest input it accepts.
APPLICATIONS: dict[str, tuple[str, int]] = {
    "ConvNeXt": ("ConvNeXtTiny", 32), "DenseNet": ("DenseNet121", 32), "EfficientNet": ("EfficientNetB0", 32),
    "EfficientNetV2": ("EfficientNetV2B0", 32), "InceptionResNetV2": ("InceptionResNetV2", 75),
    "InceptionV3": ("InceptionV3", 75), "MobileNet": ("MobileNet", 32), "MobileNetV2": ("MobileNetV2", 32),
    "MobileNetV3": ("MobileNetV3Small", 32), "NASNet": ("NASNetMobile", 32), "ResNet": ("ResNet50", 32),
    "ResNetV2": ("ResNet50V2", 32), "VGG": ("VGG16", 32), "Xception": ("Xception", 71),
}
ACT_STAT = {"relu": "act_dead_frac", "tanh": "act_tanh_sat_frac", "sigmoid": "act_sigmoid_sat_frac"}


@dataclass
class Case:
    """One model to train; ``na`` says why it cannot be, instead."""

    group: str
    name: str
    kind: str = "vector"
    make: Callable[[], keras.Model] | None = None
    na: str | None = None
    aliases: list[str] = field(default_factory=list)


def layer_classes() -> dict[str, tuple[type, list[str]]]:
    """``{name: (class, aliases)}`` of every public ``Layer`` subclass in ``keras.layers``."""
    by_class: dict[type, list[str]] = {}
    for name in sorted(dir(keras.layers)):
        obj = getattr(keras.layers, name)
        if inspect.isclass(obj) and issubclass(obj, keras.layers.Layer) and not name.startswith("_"):
            by_class.setdefault(obj, []).append(name)
    out = {}
    for cls, names in by_class.items():
        main = cls.__name__ if cls.__name__ in names else names[0]
        out[main] = (cls, [n for n in names if n != main])
    return dict(sorted(out.items()))


def input_kind(name: str) -> str:
    """What input a layer needs, from its name."""
    if name.startswith("ConvLSTM"):
        return name[:9].lower() + "d"
    if "Embedding" in name:
        return "ints"
    if name.endswith(("3D", "3DTranspose")):
        return "vol"
    if name.endswith(("2D", "2DTranspose")) or name in ("SpatialDropout2D",):
        return "img"
    if (name.endswith(("1D", "1DTranspose")) or name in ATTENTION_LIST | ATTENTION_ARGS or "RNN" in name
            or name in ("LSTM", "GRU", "LSTMCell", "GRUCell", "Bidirectional", "TimeDistributed", "Masking",
                        "StackedRNNCells", "RepeatVector")):
        return "seq" if name != "RepeatVector" else "vector"
    return "vector"


def construct(name: str, cls: type) -> Any:
    """An instance of ``cls`` from its signature and :data:`ARGS` (or :data:`SPECIAL`)."""
    if name in SPECIAL:
        return SPECIAL[name]()
    kwargs: dict[str, Any] = {}
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if p.default is p.empty or (p.name == "activation" and p.default in (None, "linear")):
            if p.name not in ARGS:
                raise TypeError(f"no value for the required argument {p.name!r}")
            kwargs[p.name] = ARGS[p.name]
    if name.endswith(("3D", "3DTranspose")) and "kernel_size" in kwargs:
        kwargs["kernel_size"] = 2
    return cls(**kwargs)


def _model(kind: str, body: Callable[[Any], Any]) -> keras.Model:
    inp = keras.Input(SHAPES[kind], dtype="int32" if kind == "ints" else "float32")
    h = keras.layers.Flatten(name="flat")(body(inp))
    return keras.Model(inp, keras.layers.Dense(CLASSES, name="head")(h))


def layer_model(name: str, cls: type, kind: str) -> keras.Model:
    """``Input -> layer -> Flatten -> Dense`` (see the module docstring for the variants)."""
    layer = construct(name, cls)
    if name in MERGE:
        return _model(kind, lambda x: layer([keras.layers.Dense(4, name="pre")(x),
                                             keras.layers.Dense(4, name="pre_b")(x)]))
    if name in ATTENTION_LIST:
        return _model(kind, lambda x: layer([x, x]))
    if name in ATTENTION_ARGS:
        return _model(kind, lambda x: layer(x, x))
    if kind == "ints" or _has_weights(construct(name, cls), kind):
        return _model(kind, layer)
    return _model(kind, lambda x: layer(keras.layers.Dense(4, name="pre")(x)))


def _has_weights(layer: Any, kind: str) -> bool:
    try:
        layer.build((None, *SHAPES[kind]))
    except Exception:  # noqa: BLE001 - a layer that builds only when called: treat as weighted
        return True
    return bool(layer.weights)


def layer_cases() -> list[Case]:
    """A case per ``keras.layers`` class (``na`` set for those that cannot train in a model)."""
    out = []
    for name, (cls, aliases) in layer_classes().items():
        kind = input_kind(name)
        case = Case("layer", name, kind, aliases=aliases)
        if name in NOT_APPLICABLE:
            case.na = NOT_APPLICABLE[name]
        elif ".preprocessing." in cls.__module__ or name == "Pipeline":
            case.na = "preprocessing layer: runs in the input pipeline and holds no trainable weights"
        else:
            case.make = lambda name=name, cls=cls, kind=kind: layer_model(name, cls, kind)
        out.append(case)
    return out


def application_family(name: str) -> str | None:
    """The :data:`APPLICATIONS` family of a ``keras.applications`` model name (None: a new family).

    Example:
        >>> application_family("ResNet101V2"), application_family("EfficientNetV2L"), application_family("Foo")
        ('ResNetV2', 'EfficientNetV2', None)
    """
    if name.startswith("ResNet") and name.endswith("V2"):
        return "ResNetV2"
    matches = [f for f in APPLICATIONS if name.startswith(f) and f != "ResNetV2"]
    return max(matches, key=len) if matches else None


def application_cases() -> list[Case]:
    """The smallest model of every ``keras.applications`` family at its smallest input; a model
    of a family missing from :data:`APPLICATIONS` is listed so that it gets added."""
    out = []
    for _family, (name, size) in sorted(APPLICATIONS.items()):
        if not hasattr(keras.applications, name):
            out.append(Case("application", name, na=f"not in Keras {keras.__version__}"))
        else:
            out.append(Case("application", name, f"img{size}",
                            make=lambda name=name, size=size: _application(name, size)))
    for name in sorted(n for n in dir(keras.applications) if n[:1].isupper()):
        if application_family(name) is None:
            out.append(Case("application", name, na="a family missing from APPLICATIONS: add its smallest model"))
    return out


def _application(name: str, size: int) -> keras.Model:
    fn = getattr(keras.applications, name)
    kwargs: dict[str, Any] = {"weights": None, "input_shape": (size, size, 3), "classes": CLASSES}
    if "classifier_activation" in inspect.signature(fn).parameters:
        kwargs["classifier_activation"] = None
    return fn(**kwargs)


def data(kind: str, n: int = BATCH * STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Inputs for ``kind`` (standard normal; images in [0, 1]; ids in [0, 20)) and 3-class labels."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, CLASSES, n)
    if kind == "ints":
        return rng.integers(0, 20, (n, *SHAPES[kind])).astype("int32"), y
    if kind.startswith("img") and kind != "img":
        size = int(kind[3:])
        return rng.random((n, size, size, 3), dtype=np.float32), y
    return rng.normal(size=(n, *SHAPES[kind])).astype("float32"), y


class _Losses(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []

    def on_train_batch_end(self, batch: int, logs=None) -> None:
        self.losses.append(float((logs or {}).get("loss", float("nan"))))


def _recurrent(layer: Any) -> bool:
    return isinstance(layer, keras.layers.RNN) or hasattr(layer, "state_size")


def families(model: keras.Model) -> dict[str, list[str]]:
    """``{family: [layer names]}`` of the ReLU/tanh/sigmoid activations inside ``model`` that the
    adapter can watch: those inside the time loop of a recurrent layer or cell (an LSTM's gates)
    cannot leave the loop and are not expected, as the adapter documents."""
    out: dict[str, list[str]] = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if _recurrent(layer):
            continue
        found = {FAMILY_OF_LAYER.get(type(layer).__name__)}
        for attr in ("activation", "recurrent_activation"):
            try:
                fn = getattr(layer, attr, None)
            except Exception:  # noqa: BLE001, S112 - a property that cannot be read
                continue
            while hasattr(fn, "_tripwire_original"):
                fn = fn._tripwire_original
            found.add(FAMILY_OF_FUNCTION.get(getattr(fn, "__name__", "")))
        for family in found - {None}:
            out.setdefault(family, []).append(layer.name)
    return out


def activation_gaps(model: keras.Model, samples: list, warned: Warnings) -> list[str]:
    """Activation families of ``model`` neither probed nor named in a tripwire warning."""
    gaps = []
    for family, names in sorted(families(model).items()):
        probed = any(s.stats.get(k) for s in samples for k in s.stats if k.split("[")[0] == ACT_STAT[family])
        if not probed and not any(warned.mention(n) for n in names):
            gaps.append(f"{family} activation of {', '.join(sorted(set(names))[:3])} neither probed nor warned about")
    return gaps


def fit(case: Case, init: list | None, config: dict | None) -> tuple[Run, list]:
    """One seeded 3-step fit of ``case`` (from ``init`` weights), with a callback for ``config``."""
    keras.utils.set_random_seed(0)
    model = case.make()
    if init is not None:
        model.set_weights(init)
    weights0 = model.get_weights()
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = data(case.kind)
    losses = _Losses()
    callbacks: list = [losses]
    tw = None
    samples: list = []
    if config is not None:
        tw = KerasTripwire(config, log_dir=False)
        samples = keep_samples(tw.monitor)
        callbacks.append(tw)
    with Warnings() as warned, contextlib.redirect_stdout(io.StringIO()):
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=callbacks)
    run = Run(losses=losses.losses, weights=model.get_weights())
    if tw is not None:
        run.findings, run.disabled = findings_of(tw), dict(tw.monitor.guard.disabled)
        run.missing = missing_params(samples, [v.path for v in model.trainable_variables])
        run.missing += activation_gaps(model, samples, warned)
    return run, weights0


def run_case(case: Case, framework: str) -> Outcome:
    """Plain, every-rule and default-rule fits of one case, judged."""
    if case.na is not None:
        return Outcome(framework, case.group, case.name, "n/a", case.na)
    init: list = []

    def plain() -> Run:
        run, weights0 = fit(case, None, None)
        init.extend(weights0)
        return run

    try:
        runs = [timed(plain)]
        if runs[0].error is None:
            runs.append(timed(lambda: fit(case, init, every_rule_config("keras"))[0]))
            runs.append(timed(lambda: fit(case, init, default_config())[0]))
        else:
            runs += [None, None]
        noise = None
        if runs[1] is not None and runs[1].error is None and differs(runs[0], runs[1]):
            noise = timed(lambda: fit(case, nudged(init), None)[0])  # how far rounding noise alone goes
        return judge(framework, case.group, case.name, *runs, noise=noise)
    finally:
        keras.backend.clear_session()
