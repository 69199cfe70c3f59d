"""Dead-unit and saturation statistics of ReLU-family, tanh and sigmoid activations.

Two kinds of sites are found in a model (nested models included):

- a layer whose ``activation`` attribute is a known function: ``Dense(64, activation="relu")``,
  ``Conv2D(..., activation="tanh")``, ``Activation("sigmoid")``; the attribute is replaced by a
  probe made with :func:`functools.wraps`, so it still serializes as ``"relu"``;
- a ``ReLU``, ``LeakyReLU``, ``ELU`` or ``PReLU`` layer, whose ``call`` is wrapped.

Recurrent layers (``LSTM``, ``GRU``, ``SimpleRNN``, ``ConvLSTM*``, any ``keras.layers.RNN`` and
any RNN cell) are not sites: their activations (the gates of an LSTM) run inside a loop over the
time steps, whose intermediate values cannot be taken out of the loop. Their ``activation`` is a
read-only property that forwards to the cell; a layer whose ``activation`` cannot be replaced
for any other reason is left out too. Their kernels, recurrent kernels and biases get gradient
and weight statistics like those of any other layer.

A probe hands the activation's output to ``record(site, y)`` and returns it unchanged; the
collector keeps it for the sampled step only and reduces it inside the same compiled step.
Per unit means per feature (last axis) or per channel (axis 1 for ``channels_first`` layers);
every other position is a sample. A per-unit share ("active in < 1% of the samples") from
fewer than :data:`~tripwire.stats.PER_UNIT_MIN_SAMPLES` samples is not reported: on a batch of one, a healthy
unit that happens to be off would look dead. Layers that produce the model's outputs are left
out: a confident sigmoid output is saturated by design. :meth:`ActivationProbes.remove` puts
every original back. A probe that fails (wrapping its layer, recording its output, or building
its statistics while the step is traced) switches off its own site, with one warning naming the
layer (:mod:`tripwire.failopen`); the other sites keep their statistics.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
    ...                           keras.layers.Dense(1, activation="sigmoid", name="out")])
    >>> [(s.name, s.family) for s in find_sites(model)]
    [('hidden', 'relu')]
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import keras
from keras import ops

from tripwire.callbacks.keras import math as km
from tripwire.callbacks.keras.buffer import Layout, reduction
from tripwire.failopen import FailOpen
from tripwire.stats import ACTIVATION_STATS, PER_UNIT_MIN_SAMPLES, UNIT_SHARES, Need, measured_on

#: The activation family (:data:`tripwire.stats.ACTIVATION_FAMILIES`, which also says which
#: statistics each family gets) of each activation function and activation layer: "relu" for relu,
#: relu6 and hard-swish (0 below -3), "leaky" for leaky_relu, elu, selu and celu.
FAMILY_OF_FUNCTION = {
    "relu": "relu", "relu6": "relu", "hard_swish": "relu", "hard_silu": "relu",
    "leaky_relu": "leaky", "elu": "leaky", "selu": "leaky", "celu": "leaky",
    "tanh": "tanh", "hard_tanh": "tanh",
    "sigmoid": "sigmoid", "hard_sigmoid": "sigmoid",
}
FAMILY_OF_LAYER = {"ReLU": "relu", "LeakyReLU": "leaky", "ELU": "leaky", "PReLU": "leaky"}
_SAMPLES = "__act_samples__"


@dataclass
class Site:
    """One activation the probes watch."""

    layer: object
    name: str
    family: str
    how: str  # "attr": layer.activation is wrapped; "call": layer.call is wrapped
    unit_axis: int = -1


def walk(layer) -> Iterable:
    """Every sublayer of ``layer``, depth first, each once."""
    seen: set[int] = set()
    stack = list(reversed(getattr(layer, "layers", []) or []))
    while stack:
        sub = stack.pop()
        if id(sub) in seen:
            continue
        seen.add(id(sub))
        yield sub
        stack.extend(reversed(getattr(sub, "layers", []) or []))


def output_layers(model) -> set[int]:
    """``id``s of the layers whose outputs are the model's outputs (empty when unknown)."""
    out: set[int] = set()
    try:
        tensors = list(model.outputs or [])
    except (AttributeError, ValueError):
        tensors = []
    for t in tensors:
        history = getattr(t, "_keras_history", None)
        layer = history[0] if history else None
        while layer is not None:
            out.add(id(layer))
            inner = getattr(layer, "layers", None)
            layer = inner[-1] if inner else None
    return out


def _original(fn):
    while hasattr(fn, "_tripwire_original"):
        fn = fn._tripwire_original
    return fn


def is_recurrent(layer) -> bool:
    """Whether ``layer`` is a recurrent layer or cell, whose activations run inside a time loop."""
    return isinstance(layer, keras.layers.RNN) or hasattr(layer, "state_size")


def replaceable(layer, attr: str) -> bool:
    """Whether ``layer.<attr>`` can be set: not a property without a setter (an ``LSTM``'s
    ``activation`` forwards to its cell's).

    Example:
        >>> replaceable(keras.layers.LSTM(4), "activation"), replaceable(keras.layers.Dense(4), "activation")
        (False, True)
    """
    declared = inspect.getattr_static(type(layer), attr, None)
    return not isinstance(declared, property) or declared.fset is not None


def _site(layer) -> Site | None:
    """The site of one layer, or None when it has no watched activation."""
    if is_recurrent(layer):
        return None
    axis = 1 if getattr(layer, "data_format", None) == "channels_first" else -1
    family = FAMILY_OF_LAYER.get(type(layer).__name__)
    if family is not None:
        return Site(layer, layer.name, family, "call", axis)
    fn = _original(getattr(layer, "activation", None))
    family = FAMILY_OF_FUNCTION.get(getattr(fn, "__name__", ""))
    if family is None or not replaceable(layer, "activation"):
        return None
    return Site(layer, layer.name, family, "attr", axis)


def find_sites(model, guard: FailOpen | None = None) -> list[Site]:
    """The watched activations of ``model``, in layer order; names are made unique. A layer that
    cannot be inspected is left out, with one warning through ``guard``."""
    guard = guard or FailOpen()
    skip = output_layers(model)
    sites: list[Site] = []
    for layer in walk(model):
        if id(layer) in skip:
            continue
        site = guard.call(probe_part(getattr(layer, "name", "?")), _site, layer)
        if site is not None:
            sites.append(site)
    counts: dict[str, int] = {}
    for s in sites:
        counts[s.name] = counts.get(s.name, 0) + 1
        if counts[s.name] > 1:
            s.name = f"{s.name}#{counts[s.name]}"
    return sites


def probe_part(name: str) -> str:
    """The fail-open part of the probe on layer ``name`` (see :mod:`tripwire.failopen`)."""
    return f"activation probe on layer '{name}'"


class ActivationProbes:
    """Probes on the sites of a model, and the per-layer statistics the needs ask for."""

    def __init__(self, model, needs: Iterable[Need], layout: Layout, guard: FailOpen | None = None) -> None:
        #: a site whose probe fails is switched off alone, with one warning naming its layer
        self.guard = guard or FailOpen()
        act_needs = [n for n in needs if n.stat in ACTIVATION_STATS]
        self.sites = find_sites(model, self.guard) if act_needs else []
        self.slots: list[tuple[Need, int, int]] = []
        for need in act_needs:
            for i, site in enumerate(self.sites):
                if measured_on(need.stat, site.family):
                    self.slots.append((need, i, layout.add(need.key, site.name, reduction(need.stat))))
        self.per_unit_keys = {need.key for need, _, _ in self.slots if need.stat in UNIT_SHARES}
        #: {site index: slot of its sample count}, for the sites with a per-unit share
        self.samples = {i: layout.add(_SAMPLES, self.sites[i].name, "min")
                        for i in sorted({i for need, i, _ in self.slots if need.stat in UNIT_SHARES})}
        self._installed: list[tuple[Site, object]] = []

    @property
    def watched(self) -> list[Site]:
        """Sites that have at least one statistic."""
        used = {i for _, i, _ in self.slots}
        return [s for i, s in enumerate(self.sites) if i in used]

    def install(self, record: Callable[[int, object], None]) -> None:
        """Wrap every watched site; ``record(site_index, output)`` sees each output. A site that
        cannot be wrapped is left out (one warning); the others are not affected."""
        used = sorted({i for _, i, _ in self.slots})
        for i in used:
            site = self.sites[i]
            with self.guard.attempt(probe_part(site.name)):
                attr = "activation" if site.how == "attr" else "call"
                original = _original(getattr(site.layer, attr))
                setattr(site.layer, attr, _probe(original, i, record, self.guard, probe_part(site.name)))
                self._installed.append((site, original))

    def remove(self) -> None:
        """Put every original activation / call back; a site that fails to be restored does not
        keep the others from it (the first error is raised once all were tried)."""
        errors = []
        for site, original in self._installed:
            try:
                _restore(site, original)
            except Exception as exc:  # noqa: BLE001 - restore every other site first
                errors.append(exc)
        self._installed.clear()
        if errors:
            raise errors[0]

    def compute(self, outputs: dict[int, object]) -> dict[int, object]:
        """``{slot: value}`` from the recorded outputs ``{site index: y}`` of one step. A site whose
        statistics cannot be built (while tracing) is switched off alone: its slots stay unfilled."""
        by_site: dict[int, list[tuple[Need, int]]] = {}
        for need, i, slot in self.slots:
            by_site.setdefault(i, []).append((need, slot))
        values: dict[int, object] = {}
        for i, wanted in by_site.items():
            y, site = outputs.get(i), self.sites[i]
            if y is None or not self.guard.ok(probe_part(site.name)):
                continue
            values.update(self.guard.call(probe_part(site.name), self._site_values, i, wanted, y, fallback={}))
        return values

    def _site_values(self, i: int, wanted: list[tuple[Need, int]], y) -> dict[int, object]:
        axis = self.sites[i].unit_axis
        values = {slot: _stat(need, ops.stop_gradient(y), axis) for need, slot in wanted}
        if i in self.samples:
            values[self.samples[i]] = km.positions(y, axis)
        return values

    def drop_unmeasured(self, stats: dict[str, dict[str | None, float]]) -> None:
        """Remove (in place) the per-unit shares of sites that saw too few samples in their step.

        Example:
            >>> import keras
            >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="fc"),
            ...                           keras.layers.Dense(1)])
            >>> probes = ActivationProbes(model, [Need("act_dead_frac")], Layout("pre"))
            >>> stats = {"act_dead_frac": {"fc": 1.0}, "__act_samples__": {"fc": 1.0}}
            >>> probes.drop_unmeasured(stats)
            >>> stats
            {}
        """
        few = {site for site, n in stats.pop(_SAMPLES, {}).items() if n < PER_UNIT_MIN_SAMPLES}
        if not few:
            return
        for key in self.per_unit_keys & set(stats):
            stats[key] = {site: v for site, v in stats[key].items() if site not in few}
            if not stats[key]:
                del stats[key]


def _probe(original, index: int, record, guard: FailOpen, part: str):
    @functools.wraps(original)
    def probe(*args, **kwargs):
        y = original(*args, **kwargs)
        if guard.ok(part):
            guard.call(part, record, index, y)
        return y

    probe._tripwire_original = original
    return probe


def _restore(site: Site, original) -> None:
    if site.how == "attr":
        site.layer.activation = original
        return
    if "call" in vars(site.layer):
        delattr(site.layer, "call")  # the class's own method again
    if site.layer.call != original:  # the original was itself an instance attribute
        site.layer.call = original


def _stat(need: Need, y, axis: int):
    if need.stat == "act_dead_frac":
        return km.unit_share_below(ops.not_equal(y, 0), axis, float(need.setting("inactive_below")))
    if need.stat in ("act_tanh_sat_frac", "act_sigmoid_sat_frac"):
        level, share = float(need.setting("level")), float(need.setting("share"))
        y = km.f32(y)
        if need.stat == "act_tanh_sat_frac":
            saturated = ops.greater_equal(ops.abs(y), level)
        else:
            saturated = ops.logical_or(ops.less_equal(y, 1.0 - level), ops.greater_equal(y, level))
        return km.unit_share_at_least(saturated, axis, share)
    if need.stat == "act_zero_frac":
        return km.zero_frac(y)
    return km.variance(y)
