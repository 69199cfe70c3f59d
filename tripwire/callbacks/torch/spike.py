"""`SpikeProbe`: spikes of the training loss and of the global gradient norm, judged on the device
at every optimizer step.

Each judged series (:class:`SpikeSeries`) keeps, in a device ring buffer, the logarithms of its
values of the last ``window`` steps, with NaN in place of a step that was a spike, so a spike
never raises the bar for the next one. Every :data:`REFRESH` steps the ring's median and MAD
become a shift and a scale on the device (``torch.nanmedian``: the spikes' NaNs are left out);
every step then costs about ten element-wise kernels on 0-d tensors::

    z = (log x - median) / scale                        spike = z > limit and log x is finite
    scale = max(1.4826 MAD, (largest - median) / c(n), 0.01)

with ``largest`` the largest of the ``n`` kept values and ``c(n)`` the expected largest of ``n``
standard normal draws (the normal quantile at ``1 - 1/(n + 1)``: 2.42 for 128). The MAD ignores a
distribution's tail by design, and the batches of small-batch fine-tuning have a heavy one: a
BERT fine-tuned at batch size 16 sits at a loss of 0.012 with one batch in ten or twenty at
0.15-0.29 (a hard example), each a z of 8-30 against the MAD alone. The second term makes the
window's own largest value an ordinary maximum, so a value must stand out from the tail the
history already holds; in Gaussian noise the two terms agree, and a loss with small, even noise
(a large batch) is judged as by the MAD. Measured on the healthy Lightning corpus: BERT,
DistilBERT, ViT and the GAN, which fired with the MAD alone, are silent (see the README).

Why logarithms: a loss and a gradient norm are positive and their noise is multiplicative. A
classifier that has fit its data has a loss near 0 whose batches differ by factors (one hard
example lifts a batch 10x): on the raw values such a run "spikes" every few dozen steps
(measured: z up to 9 on a healthy MLP at loss 4e-4), on the logarithms it stays below 2.5,
while a batch with inputs x1000 scores 8 to 30. A loss that is zero or negative has no
logarithm and is not judged (judge ``grad_norm`` there).

Nothing is read on the host: the step's verdict is a device flag (:attr:`SpikeProbe.flag`) that
the ``skip_step`` action reads (see :class:`~tripwire.callbacks.torch.driver.TorchDriver`), and
the count, the largest z and the last spiking step since the previous flush travel to the host
in its packed vector. The ring's position and the refresh schedule are host counters.

A model on the CPU is judged by :class:`HostSpikeSeries`, the same arithmetic in Python floats:
there the host is the device (reading a CPU tensor waits for nothing), and a dozen float
operations cost microseconds where as many kernel launches on 0-d tensors cost ~0.2 ms per step
inside a training loop (measured on the MLP of ``benchmarks/overhead_spike.py``: the model's own
kernels leave the launches' code and data out of the caches). ``reductions.accelerator_path_on_cpu``
makes a CPU run take the device path, as ``benchmarks/gpu_check.py`` rehearses a CUDA run.

A spike is one-sided (a loss that drops is no fault). The judgement starts once ``warmup`` of the
ring's values are no spike; a series that stays above its old level (a new regime, not a spike)
empties the ring of kept values, so after ``window - warmup`` steps the judgement pauses and the
new level fills the history: a persistent shift is never skipped for good.

Example (a loss of 1.0 ± noise, then one batch at 40):
    >>> import torch
    >>> from tripwire.stats import Need
    >>> probe = SpikeProbe([Need("spike_count", (("series", "loss"), ("warmup", 16), ("window", 32)))])
    >>> probe.allocate(torch.device("cpu"))
    >>> g = torch.Generator().manual_seed(0)
    >>> losses = 1.0 + 0.05 * torch.randn(40, generator=g)
    >>> losses[30] = 40.0
    >>> for step, loss in enumerate(losses):
    ...     probe.add_loss(loss)
    ...     flag = probe.judge(step)
    ...     if step == 30:
    ...         print("step 30 spiked:", bool(flag))
    step 30 spiked: True
    >>> [piece.read(piece.values.tolist()) for piece in probe.pieces()]
    [{'spike_count[series=loss,warmup=16,window=32]': {None: 1.0}}]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from tripwire.callbacks.torch import reductions
from tripwire.callbacks.torch.packing import Piece, Series, ops
from tripwire.spike_history import (
    MAD_TO_SD,
    REFRESH,
    SCALE_FLOOR,
    SPIKE_STATS,
    expected_largest,
    series_needs,
    series_settings,
    series_stats,
    state_key,
)
from tripwire.stats import Need


class _Ring:
    """The ring position and the refresh schedule that both kinds of series share (host counters)."""

    window: int
    position: int
    written: int

    def refresh(self) -> None:
        raise NotImplementedError

    def _advance(self) -> None:
        """Move to the next slot of the ring; every :data:`REFRESH` values, recompute the shift and scale."""
        self.position = (self.position + 1) % self.window
        self.written += 1
        if self.written % REFRESH == 0:
            self.refresh()


class SpikeSeries(_Ring):
    """The history and the verdicts of one series (see the module docstring).

    Args:
        window: steps in the history; warmup: kept values before the first verdict; limit: the
            z-score above which a step is a spike; device: where the tensors live.
    """

    def __init__(self, window: int, warmup: int, limit: float, device: torch.device) -> None:
        self.window, self.warmup, self.limit = window, warmup, float(limit)
        nan = float("nan")
        self.ring = torch.full((window,), nan, device=device)
        self.position = 0  # host counters: where the next value goes, and values written
        self.written = 0
        self.shift = torch.full((), float("-inf"), device=device)  # z = shift + x * scale_inv
        self.scale_inv = torch.zeros((), device=device)
        self.count = torch.zeros((), device=device)
        self.max_z = torch.full((), float("-inf"), device=device)
        self.last = torch.full((), -1.0, device=device)
        self._nan = torch.full((), nan, device=device)

    def judge(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Judge this step's value ``x`` (a 0-d float32 device tensor); the verdict, a 0-d bool
        device tensor. No host sync."""
        x = torch.log(x)
        z = torch.addcmul(self.shift, x, self.scale_inv)
        finite = torch.isfinite(x)
        over = z > self.limit
        spike = over & finite
        torch.where(finite > over, x, self._nan, out=self.ring[self.position])  # kept: finite, no spike
        self.count.add_(spike)
        self.last.masked_fill_(spike, float(step))
        torch.fmax(self.max_z, z * finite, out=self.max_z)  # NaN (ignored by fmax) where x is not finite
        self._advance()
        return spike

    def refresh(self) -> None:
        """Recompute the shift and scale from the kept values (on the device)."""
        median = torch.nanmedian(self.ring)
        mad = torch.nanmedian((self.ring - median).abs())
        kept = torch.isfinite(self.ring).sum()
        largest = torch.nan_to_num(self.ring, nan=float("-inf")).max()
        tail = (largest - median) / torch.special.ndtri(1.0 - 1.0 / (kept.float() + 1.0))
        scale = torch.fmax(mad * MAD_TO_SD, tail).clamp_min_(SCALE_FLOOR)
        ready = kept >= self.warmup
        self.scale_inv.copy_(torch.where(ready, scale.reciprocal(), 0.0))
        self.shift.copy_(torch.where(ready, -median / scale, float("-inf")))

    def take(self) -> torch.Tensor:
        """``[count, max z, last step]`` since the previous call (a new tensor), and a fresh start."""
        values = torch.stack([self.count, self.max_z, self.last])
        self.count.zero_()
        self.max_z.fill_(float("-inf"))
        self.last.fill_(-1.0)
        return values

    def state_dict(self) -> dict[str, Any]:
        """The history (logarithms) in plain Python (one host read, at checkpoint time)."""
        return {"ring": self.ring.tolist(), "position": self.position, "written": self.written}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` when its window matches."""
        ring = state.get("ring")
        if not isinstance(ring, list) or len(ring) != self.window:
            return
        self.ring.copy_(torch.tensor(ring, dtype=self.ring.dtype))
        self.position, self.written = int(state.get("position", 0)), int(state.get("written", 0))
        self.refresh()


class HostSpikeSeries(_Ring):
    """:class:`SpikeSeries` in Python floats, for a model on the CPU (see the module docstring):
    the same verdicts, from the same history, state and flushed values.

    Example:
        >>> series = HostSpikeSeries(window=16, warmup=8, limit=6.0)
        >>> [series.judge(torch.tensor(v), step) for step, v in enumerate([1.0, 1.1, 0.9] * 5 + [50.0])][-2:]
        [False, True]
    """

    def __init__(self, window: int, warmup: int, limit: float, device: torch.device | None = None) -> None:
        self.window, self.warmup, self.limit = window, warmup, float(limit)
        self.ring = [math.nan] * window
        self.position = 0
        self.written = 0
        self.shift, self.scale_inv = -math.inf, 0.0
        self.count, self.max_z, self.last = 0.0, -math.inf, -1.0

    def judge(self, x: Any, step: int) -> bool:
        """Judge this step's value ``x`` (a CPU tensor or a number); whether it spiked."""
        value = float(x)
        log = math.log(value) if 0 < value < math.inf else math.nan  # log(0) = -inf: not finite either
        spike = False
        if math.isfinite(log):
            z = self.shift + log * self.scale_inv
            spike = z > self.limit
            self.max_z = max(self.max_z, z)
        self.ring[self.position] = log if math.isfinite(log) and not spike else math.nan
        if spike:
            self.count += 1
            self.last = float(step)
        self._advance()
        return spike

    def refresh(self) -> None:
        """Recompute the shift and scale from the kept values."""
        kept = [v for v in self.ring if not math.isnan(v)]
        if len(kept) < self.warmup:
            self.shift, self.scale_inv = -math.inf, 0.0
            return
        median = _lower_median(kept)
        tail = (max(kept) - median) / expected_largest(len(kept))
        scale = max(_lower_median([abs(v - median) for v in kept]) * MAD_TO_SD, tail, SCALE_FLOOR)
        self.shift, self.scale_inv = -median / scale, 1.0 / scale

    def take(self) -> torch.Tensor:
        """``[count, max z, last step]`` since the previous call, and a fresh start."""
        values = torch.tensor([self.count, self.max_z, self.last])
        self.count, self.max_z, self.last = 0.0, -math.inf, -1.0
        return values

    def state_dict(self) -> dict[str, Any]:
        """The history (logarithms) in plain Python."""
        return {"ring": list(self.ring), "position": self.position, "written": self.written}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` when its window matches."""
        ring = state.get("ring")
        if not isinstance(ring, list) or len(ring) != self.window:
            return
        self.ring = [float(v) for v in ring]
        self.position, self.written = int(state.get("position", 0)), int(state.get("written", 0))
        self.refresh()


def _lower_median(values: list[float]) -> float:
    """The median, or of an even count the lower of the middle two (as ``torch.nanmedian``)."""
    return sorted(values)[(len(values) - 1) // 2]


class SpikeProbe:
    """Every series the ``spike_*`` needs ask for, judged at every optimizer step.

    The driver feeds it: :meth:`add_loss` with each batch's loss of the step in progress (their
    mean is judged), then :meth:`judge` once per optimizer step, with the optimizer when the
    gradients are final (the global gradient norm is judged then) and once the step's loss is in.

    Args:
        needs: the needs of the enabled rules; those of :data:`SPIKE_STATS` are served.
    """

    def __init__(self, needs: Iterable[Need]) -> None:
        self.needs = [n for n in needs if n.stat in SPIKE_STATS]
        self.settings = series_settings(self.needs)
        self.series: dict[tuple[str, int, int, float], SpikeSeries | HostSpikeSeries] = {}
        #: whether a rank's loss is its own (DDP): its spikes are judged and reported, but they leave
        #: them out of :attr:`flag`, so that every rank skips the same steps (set by the driver)
        self.loss_is_local = False
        #: the verdict of the last :meth:`judge` (any judged series spiked): a device flag, a bool on
        #: the CPU, or None
        self.flag: torch.Tensor | bool | None = None
        self._losses: list[torch.Tensor] = []
        self._restored: dict[str, Any] = {}
        self._judged = {name: [s for s in self.settings if s[0] == name] for name in ("loss", "grad_norm")}
        self._on_host = False

    @property
    def wanted(self) -> bool:
        """Whether some rule needs a spike statistic."""
        return bool(self.needs)

    def wants(self, series: str) -> bool:
        """Whether ``series`` (``loss`` or ``grad_norm``) is judged."""
        return bool(self._judged.get(series))

    def allocate(self, device: torch.device) -> None:
        """The state of every series: device tensors, or Python floats on the CPU (history restored by
        :meth:`load_state_dict` kept)."""
        on_host = torch.device(device).type == "cpu" and not reductions.accelerator_path_on_cpu
        kind = HostSpikeSeries if on_host else SpikeSeries
        self._on_host = on_host
        self.series = {s: kind(*s[1:], device=device) for s in self.settings}
        self.load_state_dict(self._restored)

    def add_loss(self, loss: Any) -> None:
        """Keep one batch's loss of the step in progress (a device scalar; nothing is computed)."""
        if isinstance(loss, torch.Tensor) and self.wants("loss"):
            self._losses.append(loss.detach())

    def judge(self, step: int, optimizer: Any = None) -> torch.Tensor | bool | None:
        """Judge step ``step``: the global gradient norm of ``optimizer``'s gradients when it is
        given, and the mean of the losses added since the last call when there are some. Returns
        (and keeps in :attr:`flag`) whether any judged series spiked, a device flag; None when
        nothing was judged (or only a rank-local loss)."""
        values: list[tuple[str, Any]] = []
        if optimizer is not None and self._judged["grad_norm"]:
            norm = host_grad_norm(optimizer) if self._on_host else global_grad_norm(optimizer)
            if norm is not None:
                values.append(("grad_norm", norm))
        if self._losses:
            losses, self._losses = self._losses, []
            values.append(("loss", self._mean_loss(losses)))
        flag = None
        for name, x in values:
            for settings in self._judged[name]:
                series = self.series.get(settings)
                if series is None:  # not allocated yet
                    continue
                spike = series.judge(x, step)
                if name == "loss" and self.loss_is_local:
                    continue
                flag = spike if flag is None else flag | spike
        self.flag = flag
        return flag

    def _mean_loss(self, losses: list[torch.Tensor]) -> Any:
        if self._on_host:  # a Python float: reading a CPU tensor waits for nothing
            return sum(float(v) for v in losses) / len(losses)
        if len(losses) == 1:
            return losses[0].float().reshape(())
        return torch.stack([v.float().reshape(()) for v in losses]).mean()

    def pieces(self) -> list[Piece]:
        """One piece per series: its count, largest z and last spiking step since the last flush."""
        return [Piece(series.take(), ops(SPIKE_STATS), _reader(series_needs(self.needs, settings)))
                for settings, series in self.series.items()]

    def state_dict(self) -> dict[str, Any]:
        """Each series' history (plain Python), keyed by its settings."""
        return {state_key(s): series.state_dict() for s, series in self.series.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` now, or at :meth:`allocate`."""
        self._restored = dict(state)
        for settings, series in self.series.items():
            saved = state.get(state_key(settings))
            if isinstance(saved, dict):
                series.load_state_dict(saved)


def _reader(needs: list[Need]) -> Callable[[list[float]], Series]:
    """How a series' piece reads back: ``[count, max z, last step]`` as its needs ask."""
    return lambda values: series_stats(needs, *values)


def _grads(optimizer: Any) -> list[torch.Tensor]:
    """Every dense gradient of ``optimizer``'s parameters."""
    optimizer = getattr(optimizer, "_optimizer", optimizer)  # LightningOptimizer -> torch optimizer
    return [p.grad for group in optimizer.param_groups for p in group["params"]
            if p.grad is not None and not p.grad.is_sparse]


def host_grad_norm(optimizer: Any) -> float | None:
    """:func:`global_grad_norm` for gradients on the CPU, as a Python float: one dot product per
    gradient, summed in double precision; None when no parameter has a gradient.

    On the CPU this is the cheaper exact form: ``torch._foreach_norm`` plus the stack and the norm
    of the stack cost about 25% more inside a training loop (measured on the MLP of
    ``benchmarks/overhead_spike.py``: 0.15 against 0.12 ms), and the value is read as a float anyway.

    Example:
        >>> net = torch.nn.Linear(3, 1)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> net(torch.ones(2, 3)).sum().backward()
        >>> abs(host_grad_norm(opt) - float(global_grad_norm(opt))) < 1e-5
        True
    """
    grads = _grads(optimizer)
    if not grads:
        return None
    total = 0.0
    for grad in grads:
        flat = grad.reshape(-1)
        if flat.dtype != torch.float32 and flat.dtype != torch.float64:
            flat = flat.float()
        total += float(torch.dot(flat, flat))
    return math.sqrt(total)


def global_grad_norm(optimizer: Any) -> torch.Tensor | None:
    """The L2 norm over every dense gradient of ``optimizer``'s parameters, a 0-d float32 device
    tensor (one fused norm pass); None when no parameter has a gradient.

    Example:
        >>> net = torch.nn.Linear(3, 1)
        >>> opt = torch.optim.SGD(net.parameters(), lr=0.1)
        >>> net(torch.ones(2, 3)).sum().backward()
        >>> every = torch.cat([net.weight.grad.flatten(), net.bias.grad])
        >>> bool(torch.isclose(global_grad_norm(opt), every.norm()))
        True
    """
    grads = _grads(optimizer)
    if not grads:
        return None
    norms = torch._foreach_norm(grads)
    if len(norms) == 1:
        return norms[0].float()
    if any(n.dtype != torch.float32 for n in norms):
        norms = [n.float() for n in norms]
    return torch.linalg.vector_norm(torch.stack(norms))
