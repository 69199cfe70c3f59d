"""Activation statistics through forward hooks on ReLU-family, Tanh and Sigmoid modules.

Hooks are registered once (before ``torch.compile`` traces the model, so compiled graphs keep
them) and do nothing unless :attr:`ActivationProbe.active` is set, which the collector does on
sampled training batches only. On those, each hook reduces its module's output to a few
scalars per layer on the device and adds them to one accumulator; nothing is kept, nothing is
read on the host.

Per unit means per feature (last dimension of ``(N, F)`` and ``(N, T, F)`` outputs) or per
channel (dimension 1 of ``(N, C, H, W)``); every other position is a sample. A module object
called at several places of the forward is reported once, averaged over its calls: give each
layer its own activation module to see them separately. Functional activations
(``F.relu(x)``) have no module and are not seen.

Failures (see :mod:`tripwire.callbacks.torch.parts`): a module whose hook cannot be registered,
or whose measurement raises inside the forward, is switched off alone through the guard; the
hook never raises into the user's forward (unless the guard is strict). Its slot in the
accumulator stays, so the accumulator has the same layout on every rank.

Example:
    >>> import torch
    >>> from tripwire.stats import Need
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU())
    >>> probe = ActivationProbe(net, [Need("act_dead_frac", (("inactive_below", 0.01),))])
    >>> probe.allocate(torch.device("cpu"))
    >>> probe.active = True
    >>> with torch.no_grad():
    ...     _ = net[0].bias.fill_(-100.0)  # every unit dead
    ...     _ = net(torch.randn(16, 4))
    >>> probe.read(probe.accumulator.tolist())
    {'act_dead_frac[inactive_below=0.01]': {'1': 1.0}}
    >>> probe.remove()
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn

from tripwire.callbacks.torch.packing import op
from tripwire.callbacks.torch.parts import hook_part, probe_part
from tripwire.callbacks.torch.reductions import active_share, extreme_share, reduce_dims
from tripwire.failopen import FailOpen, try_each
from tripwire.stats import ACTIVATION_STATS, PER_UNIT_MIN_SAMPLES, UNIT_SHARES, Need, measured_on, pooled_map

#: Module classes per activation family (:data:`tripwire.stats.ACTIVATION_FAMILIES`, which also
#: says which statistics each family gets). "relu": ReLU, ReLU6 and hard-swish (0 below -3:
#: MobileNetV3's main path). "leaky": LeakyReLU, PReLU, RReLU, ELU/SELU/CELU. GELU/SiLU are smooth
#: and not hooked. A per-unit share is not counted from a call with fewer than
#: :data:`~tripwire.stats.PER_UNIT_MIN_SAMPLES` samples, nor from a squeeze-excitation gate's
#: (see :func:`gate_relus`).
FAMILIES: dict[str, tuple[type[nn.Module], ...]] = {
    "relu": (nn.ReLU, nn.ReLU6, nn.Hardswish),
    "leaky": (nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU),
    "tanh": (nn.Tanh,),
    "sigmoid": (nn.Sigmoid,),
}

Stat = Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor]


def family_of(module: nn.Module) -> str | None:
    """The family a module belongs to, or None when it is not an activation we watch."""
    for name, classes in FAMILIES.items():
        if isinstance(module, classes):
            return name
    return None


#: Activations that gate features (the sigmoid of a squeeze-excitation block).
GATES = (nn.Sigmoid, nn.Hardsigmoid)


def gate_relus(model: nn.Module) -> set[str]:
    """Names of the ReLU-family modules that sit beside a sigmoid gate in the same block: the
    squeeze units of a squeeze-excitation block (torchvision's ``SqueezeExcitation``, timm's
    ``SqueezeExcite``: reduce conv, ReLU, expand conv, sigmoid, multiply).

    On a globally pooled map (:func:`tripwire.stats.pooled_map`) their per-unit shares are not
    judged: such a unit sees one average per image, which hardly changes between images, so its
    sign is fixed by initialization; about half are off from the first step and more in healthy
    training (9 of 12 in a MobileNetV3's first block for 400 steps, loss falling), and their
    output only scales channels through the gate.

    Example:
        >>> se = nn.Sequential(nn.Conv2d(16, 4, 1), nn.ReLU(), nn.Conv2d(4, 16, 1), nn.Hardsigmoid())
        >>> sorted(gate_relus(nn.ModuleDict({"se": se, "act": nn.ReLU()})))
        ['se.1']
    """
    gated = set()
    for name, block in model.named_modules():
        children = dict(block.named_children())
        if any(isinstance(child, GATES) for child in children.values()):
            gated |= {f"{name}.{c}" if name else c for c, child in children.items() if family_of(child) == "relu"}
    return gated


def stat_fn(need: Need) -> Stat:
    """The layer-level reduction for one activation need: output tensor -> scalar tensor."""
    if need.stat == "act_dead_frac":
        below = float(need.setting("inactive_below"))
        return lambda y, dims: (active_share(y, dims) < below).float().mean()
    if need.stat == "act_tanh_sat_frac":
        level, share = float(need.setting("level")), float(need.setting("share"))
        return lambda y, dims: (extreme_share(y, dims, level) >= share).float().mean()
    if need.stat == "act_sigmoid_sat_frac":
        level, share = float(need.setting("level")), float(need.setting("share"))
        # y <= 1 - level or y >= level  <=>  |y - 0.5| >= level - 0.5
        return lambda y, dims: (extreme_share(y, dims, level - 0.5, center=0.5) >= share).float().mean()
    if need.stat == "act_zero_frac":
        return lambda y, dims: (y == 0).float().mean()
    if need.stat == "act_var":
        return lambda y, dims: y.float().var(correction=0)
    raise ValueError(f"not an activation statistic: {need.stat}")


class ActivationProbe:
    """Forward hooks computing the activation needs, into one device accumulator.

    The accumulator holds, per hooked module and statistic, its sum over the sampled forward
    calls and the number of calls that measured it (a per-unit share skips calls with fewer
    than :data:`~tripwire.stats.PER_UNIT_MIN_SAMPLES` samples); :meth:`read` divides. Each
    statistic is a ``mean`` in the catalogue: its pairs add up across ranks (:attr:`ops`), so the
    result is the mean over every rank's sampled calls.

    Args:
        module: the model; every matching submodule of it is hooked.
        needs: the activation needs (others are ignored).
        guard: switches off a module whose hook fails (default: a fresh, non-strict one).
    """

    def __init__(self, module: nn.Module, needs: Iterable[Need], guard: FailOpen | None = None) -> None:
        wanted = sorted((n for n in needs if n.stat in ACTIVATION_STATS), key=lambda n: n.key)
        self.guard = guard if guard is not None else FailOpen()
        self.active = False
        self.accumulator: torch.Tensor | None = None
        self.layout: list[tuple[str, list[Need]]] = []  # (module name, its needs), in accumulator order
        self._handles = []
        gated = gate_relus(module)
        offset = 0
        for name, sub in module.named_modules():
            family = family_of(sub)
            mine = [n for n in wanted if measured_on(n.stat, family)] if family else []
            if not mine:
                continue
            self.layout.append((name, mine))  # the slot stays when the hook cannot be registered
            with self.guard.attempt(hook_part(name)):
                self._handles.append(sub.register_forward_hook(self._hook(name, offset, mine, name in gated)))
            offset += 2 * len(mine)
        self.size = offset
        #: how each element of the accumulator combines across ranks: a (sum, calls) pair per statistic
        self.ops = [op(n.stat) for _, mine in self.layout for n in mine for _ in range(2)]

    def _hook(self, name: str, offset: int, needs: Sequence[Need], gate: bool = False):  # noqa: ANN202 - returns a hook closure
        fns = [(stat_fn(n), n.stat in UNIT_SHARES) for n in needs]
        end = offset + 2 * len(fns)
        part, guard = probe_part(name), self.guard

        def hook(module: nn.Module, args: object, output: object) -> None:
            if not self.active or not isinstance(output, torch.Tensor) or output.dim() == 0 or not guard.ok(part):
                return
            try:  # a hook that raises would end the user's forward pass
                self._measure(output, fns, offset, end, gate)
            except Exception as exc:  # noqa: BLE001 - switched off with a warning (strict: raised)
                guard.fail(part, exc)

        return hook

    def _measure(self, output: torch.Tensor, fns: Sequence[tuple[Stat, bool]], offset: int, end: int,
                 gate: bool = False) -> None:
        """Add one forward call's (sum, count) per statistic into the module's slot."""
        with torch.no_grad():
            y = output.detach()
            dims = reduce_dims(y)
            unit_axis = next((d for d in range(y.dim()) if d not in dims), -1)
            squeezed = gate and pooled_map(tuple(y.shape), unit_axis)  # a squeeze-excitation gate: see gate_relus
            samples = 0 if squeezed else math.prod(y.shape[d] for d in dims)
            one, zero = torch.ones((), device=y.device), torch.zeros((), device=y.device)
            values = []
            for fn, per_unit in fns:  # (sum, count) per statistic; shapes decide, no host sync
                counted = not per_unit or samples >= PER_UNIT_MIN_SAMPLES
                values += [fn(y, dims).float(), one] if counted else [zero, zero]
            self.accumulator[offset:end].add_(torch.stack(values))  # type: ignore[index]

    def allocate(self, device: torch.device) -> None:
        """Create the accumulator on the model's device (before the first compiled forward)."""
        self.accumulator = torch.zeros(self.size, dtype=torch.float32, device=device)

    def reset(self) -> None:
        """Zero the accumulator in place (a compiled graph keeps pointing at the same tensor)."""
        if self.accumulator is not None:
            self.accumulator.zero_()

    def read(self, values: Sequence[float]) -> dict[str, dict[str | None, float]]:
        """Series from the host copy of the (reduced) accumulator: mean per module over its calls."""
        out: dict[str, dict[str | None, float]] = {}
        offset = 0
        for name, needs in self.layout:
            for i, need in enumerate(needs):
                total, calls = values[offset + 2 * i], values[offset + 2 * i + 1]
                if calls > 0:
                    out.setdefault(need.key, {})[name] = total / calls
            offset += 2 * len(needs)
        return out

    def remove(self) -> None:
        """Remove every hook; one that cannot be removed does not keep the others (the first error
        is raised after all were tried)."""
        self.active = False
        handles, self._handles = self._handles, []
        error = try_each(handles, lambda handle: handle.remove())
        if error is not None:
            raise error
