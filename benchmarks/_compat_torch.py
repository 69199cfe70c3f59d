"""torch cases of the compatibility matrix: every ``torch.nn.modules`` class, trained for 3 steps
inside a ``LightningModule`` with and without ``LightningTripwire`` (CPU).

Modules are found by enumerating ``torch.nn.modules`` (public ``nn.Module`` subclasses, each
class once) and built from their signature: required arguments come from :data:`ARGS` by name,
sized for the input the module needs (:func:`input_kind`: vectors, batch-first sequences,
1D/2D/3D channels-first maps, integer ids); :data:`EXTRA` adds what makes a module trainable or
comparable here (``affine=True`` for instance norms, ``batch_first=True``); :data:`SPECIAL`
builds what needs another module (``TransformerEncoder`` and its layer). The model is
``[Linear] -> module -> flatten -> Linear``, the leading ``Linear`` (over the last dimension)
only for modules without parameters, so gradients pass through them. Losses, containers and base
classes are listed as not applicable; a module the framework itself cannot train in such a model
(``MaxUnpool`` needs indices, ``SyncBatchNorm`` a process group) is not applicable by its own error.

Activations: the torch adapter hooks activation *modules* (``nn.ReLU``, ``nn.Tanh``, ...); an
activation computed inside a fused kernel (``nn.LSTM``'s gates) or as a function (the default
``F.relu`` of ``nn.TransformerEncoderLayer``) has no module to hook and is not expected.

Example:
    >>> cases = {c.name: c for c in module_cases()}
    >>> cases["LSTM"].kind, cases["Conv2d"].kind, cases["EmbeddingBag"].kind
    ('seq', 'c2', 'ints')
    >>> cases["CrossEntropyLoss"].na
    'a loss function, not a layer'
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _compat_core import (
    Outcome,
    Run,
    Warnings,
    default_config,
    every_rule_config,
    findings_of,
    judge,
    keep_samples,
    missing_params,
    timed,
)
from tripwire import LightningTripwire
from tripwire.callbacks.torch.activations import family_of
from tripwire.stats import ACTIVATION_STATS, CATALOGUE

BATCH, STEPS, CLASSES = 8, 3, 3
#: input shape per kind (without the batch) and its feature/channel count
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "vector": ((8,), 8), "seq": ((6, 8), 8), "c1": ((4, 8), 4), "c2": ((4, 8, 8), 4), "c3": ((2, 4, 4, 4), 2),
    "ints": ((6,), 6), "blocks": ((16, 49), 16),
}
#: Required constructor arguments by parameter name; ``F`` is the input's feature/channel count.
ARGS: dict[str, Callable[[int], Any]] = {
    "in_features": lambda f: f, "in1_features": lambda f: f, "in2_features": lambda f: f,
    "out_features": lambda f: 4, "in_channels": lambda f: f, "out_channels": lambda f: 4,
    "kernel_size": lambda f: 2, "num_features": lambda f: f, "normalized_shape": lambda f: f,
    "num_groups": lambda f: 2, "num_channels": lambda f: f, "input_size": lambda f: f, "hidden_size": lambda f: 4,
    "embed_dim": lambda f: f, "num_heads": lambda f: 2, "d_model": lambda f: f, "nhead": lambda f: 2,
    "num_embeddings": lambda f: 20, "embedding_dim": lambda f: 4, "output_size": lambda f: 2,
    "norm_type": lambda f: 2.0, "padding": lambda f: 1, "value": lambda f: 0.0, "size": lambda f: 2,
    "groups": lambda f: 2, "upscale_factor": lambda f: 2, "downscale_factor": lambda f: 2,
    "dim": lambda f: 1, "unflattened_size": lambda f: (2, f // 2), "threshold": lambda f: 0.1,
}
_RNN = {"input_size": 8, "hidden_size": 4, "batch_first": True}
EXTRA: dict[str, dict[str, Any]] = {
    "InstanceNorm": {"affine": True}, "RNN": _RNN, "LSTM": _RNN, "GRU": _RNN,
    "MultiheadAttention": {"batch_first": True},
    "TransformerEncoderLayer": {"batch_first": True, "dim_feedforward": 16},
    "TransformerDecoderLayer": {"batch_first": True, "dim_feedforward": 16},
    "Transformer": {"d_model": 8, "nhead": 2, "batch_first": True, "dim_feedforward": 16, "num_encoder_layers": 1,
                    "num_decoder_layers": 1},
    "FractionalMaxPool": {"output_ratio": 0.5}, "Upsampl": {"scale_factor": 2}, "Fold": {"output_size": (8, 8)},
}
#: Kinds a name alone does not tell.
KINDS = {"ChannelShuffle": "c2", "PixelShuffle": "c2", "PixelUnshuffle": "c2", "LocalResponseNorm": "c2",
         "CrossMapLRN2d": "c2", "Upsample": "c1", "Fold": "blocks", "Unfold": "c2"}
SPECIAL: dict[str, Callable[[], nn.Module]] = {
    "TransformerEncoder": lambda: nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), num_layers=1, enable_nested_tensor=False),
    "TransformerDecoder": lambda: nn.TransformerDecoder(
        nn.TransformerDecoderLayer(8, 2, 16, batch_first=True), num_layers=1),
}
NOT_APPLICABLE: dict[str, str] = {
    "Module": "the base class (every case is one)", "Container": "a container (deprecated)",
    "Sequential": "a container", "ModuleList": "a container", "ModuleDict": "a container",
    "ParameterList": "a container", "ParameterDict": "a container",
    "RNNBase": "base class of RNN/LSTM/GRU (cases)", "RNNCellBase": "base class of the cells (cases)",
    "AdaptiveLogSoftmaxWithLoss": "a loss with its own head: its forward needs the targets",
    **{f"MaxUnpool{d}d": "needs the indices of a MaxPool as a second input" for d in (1, 2, 3)},
}
TWO_INPUTS = {"Bilinear", "CosineSimilarity", "PairwiseDistance", "Transformer", "TransformerDecoder",
              "TransformerDecoderLayer"}


@dataclass
class Case:
    """One model to train; ``na`` says why it cannot be, instead."""

    group: str
    name: str
    kind: str = "vector"
    make: Callable[[], nn.Module] | None = None
    na: str | None = None
    skipped: bool = False  # ``na`` because a library is missing here, not because of the case


def module_classes() -> dict[str, type]:
    """``{name: class}`` of every public ``nn.Module`` subclass in ``torch.nn.modules`` (one name per class)."""
    out: dict[str, type] = {}
    for name in sorted(dir(nn.modules)):
        obj = getattr(nn.modules, name)
        if inspect.isclass(obj) and issubclass(obj, nn.Module) and not name.startswith("_"):
            out.setdefault(obj.__name__ if hasattr(nn.modules, obj.__name__) else name, obj)
    return dict(sorted(out.items()))


def input_kind(name: str) -> str:
    """What input a module needs, from its name (cells read a sequence, one step at a time)."""
    if name in KINDS:
        return KINDS[name]
    if name.startswith("Embedding"):
        return "ints"
    if name.endswith(("1d", "2d", "3d")):
        return "c" + name[-2]
    if name in ("RNN", "LSTM", "GRU", "MultiheadAttention") or name.startswith("Transformer") or name.endswith("Cell"):
        return "seq"
    return "vector"


def construct(name: str, cls: type) -> nn.Module:
    """An instance of ``cls`` from its signature, :data:`ARGS` and :data:`EXTRA`."""
    if name in SPECIAL:
        return SPECIAL[name]()
    features = SHAPES[input_kind(name)][1]
    kwargs: dict[str, Any] = {}
    params = inspect.signature(cls.__init__).parameters
    for p in list(params.values())[1:]:
        if p.default is p.empty and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            if p.name not in ARGS:
                raise TypeError(f"no value for the required argument {p.name!r}")
            kwargs[p.name] = ARGS[p.name](features)
    for key, extra in EXTRA.items():
        if name.removeprefix("Lazy").startswith(key) and (key not in ("RNN", "LSTM", "GRU") or name == key):
            open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values())
            kwargs.update({k: v for k, v in extra.items() if k in params or open_ended})
    return cls(**kwargs)


class Body(nn.Module):
    """Calls the module under test the way it is called in a model; returns ``(N, features)``."""

    def __init__(self, name: str, module: nn.Module, pre: nn.Module | None) -> None:
        super().__init__()
        self.name, self.pre, self.module = name, pre, module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre is not None:
            x = self.pre(x)
        if self.name.endswith("Cell"):
            y = None
            for t in range(x.shape[1]):
                y = self.module(x[:, t], y)
            y = y[0] if isinstance(y, tuple) else y
        elif self.name == "MultiheadAttention":
            y = self.module(x, x, x)
        elif self.name in TWO_INPUTS:
            y = self.module(x, x.flip(0))
        else:
            y = self.module(x)
        while isinstance(y, (tuple, list)):
            y = y[0]
        return y.flatten(1) if y.dim() > 1 else y[:, None]


class Task(pl.LightningModule):
    """Cross-entropy classification around a body; SGD with momentum (see ``_compat_core.RTOL``), no validation."""

    def __init__(self, body: nn.Module, width: int) -> None:
        super().__init__()
        self.body, self.head = body, nn.Linear(width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)


def module_model(name: str, cls: type, kind: str) -> Callable[[], nn.Module]:
    """A builder of ``[Linear] -> module -> flatten``: the body of a :class:`Task`."""
    last = SHAPES[kind][0][-1]

    def make() -> nn.Module:
        module = construct(name, cls)
        weightless = kind != "ints" and not any(True for _ in module.parameters())
        return Body(name, module, nn.Linear(last, last) if weightless else None)

    return make


def module_cases() -> list[Case]:
    """A case per ``torch.nn.modules`` class (``na`` set for losses, containers, base classes)."""
    out = []
    for name, cls in module_classes().items():
        case = Case("module", name, input_kind(name))
        if issubclass(cls, nn.modules.loss._Loss):
            case.na = "a loss function, not a layer"
        elif name in NOT_APPLICABLE:
            case.na = NOT_APPLICABLE[name]
        else:
            case.make = module_model(name, cls, case.kind)
        out.append(case)
    return out


def data(kind: str, n: int = BATCH * STEPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs for ``kind`` (standard normal, or ids in [0, 20)) and 3-class labels."""
    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.integers(0, CLASSES, n))
    if kind == "ints":
        return torch.as_tensor(rng.integers(0, 20, (n, *SHAPES[kind][0]))), y
    if kind.startswith("img"):
        size = int(kind[3:])
        return torch.as_tensor(rng.random((n, 3, size, size), dtype=np.float32)), y
    return torch.as_tensor(rng.normal(size=(n, *SHAPES[kind][0])).astype("float32")), y


class _Losses(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def activation_gaps(task: nn.Module, samples: list, warned: Warnings) -> list[str]:
    """Activation modules of ``task`` whose family statistic was neither collected nor warned about."""
    names: dict[str, list[str]] = {}
    for name, module in task.named_modules():
        family = family_of(module)
        if family is not None:
            names.setdefault(family, []).append(name)
    gaps = []
    for family, modules in sorted(names.items()):
        stats = [k for k in ACTIVATION_STATS if CATALOGUE[k].families == (family,)]
        if not stats:  # a family only the every-family statistics watch (LeakyReLU: its units cannot die)
            continue
        probed = {str(subj) for s in samples for k, v in s.stats.items() if k.split("[")[0] in stats for subj in v}
        lost = [m for m in modules if m not in probed and not warned.mention(m)]
        if lost:
            gaps.append(f"{family} module {', '.join(lost[:3])} neither probed nor warned about")
    return gaps


def _trainer(callbacks: list) -> pl.Trainer:
    return pl.Trainer(max_steps=STEPS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0, deterministic="warn", callbacks=callbacks)


def fit(make: Callable[[], nn.Module], kind: str, config: dict | None) -> Run:
    """One seeded 3-step Lightning fit of ``make()`` (a body) with a callback for ``config``."""
    x, y = data(kind)
    with torch.no_grad():
        width = make()(x[:BATCH]).shape[1]  # a separate instance: lazy modules of the trained one stay lazy
    pl.seed_everything(0, verbose=False)
    task = Task(make(), width)
    losses = _Losses()
    callbacks: list = [losses]
    tw, samples = None, []
    if config is not None:
        tw = LightningTripwire(config, log_dir=False)
        samples = keep_samples(tw.monitor)
        callbacks.append(tw)
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=False)
    with Warnings() as warned, contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _trainer(callbacks).fit(task, loader)
    run = Run(losses=losses.losses, weights=[t.detach().numpy().copy() for t in task.state_dict().values()])
    if tw is not None:
        run.findings, run.disabled = findings_of(tw), dict(tw.monitor.guard.disabled)
        run.missing = missing_params(samples, [n for n, p in task.named_parameters() if p.requires_grad])
        run.missing += activation_gaps(task, samples, warned)
    return run


def run_case(case: Any, framework: str = "torch") -> Outcome:
    """Plain, every-rule and default-rule fits of one case, judged."""
    if case.na is not None:
        return Outcome(framework, case.group, case.name, "skipped" if case.skipped else "n/a", case.na)
    plain = timed(lambda: fit(case.make, case.kind, None))
    if plain.error is not None:
        return judge(framework, case.group, case.name, plain, None, None)
    every = timed(lambda: fit(case.make, case.kind, every_rule_config("torch")))
    default = timed(lambda: fit(case.make, case.kind, default_config()))
    return judge(framework, case.group, case.name, plain, every, default)


def quiet() -> None:
    """Silence Lightning's start-up chatter and torch's one-thread-per-core default."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(1)
