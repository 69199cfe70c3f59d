"""Time of a sampled step's gradient and weight statistics on CPU, four ways.

For the parameters and gradients (after one backward) of the CPU benchmark workloads (MLP, CNN,
transformer of ``_lightning_workloads.SCALES["cpu"]``), on one thread, with two sets of statistics:
``default`` (what the default rules ask: gradient ``norm`` + ``abs_mean``, weight ``nonfinite``)
and ``every`` (all of ``TENSOR_STATS`` on both). Methods:

- ``per-tensor``: ``tensor_stats`` with its per-tensor CPU loop (``cpu_grouped_stats`` off);
- ``foreach``: ``tensor_stats`` as shipped: ``_foreach_abs`` + ``_foreach_sign_`` (``abs_mean``,
  ``zero_frac``) over groups of tensors, ``_foreach_norm`` for the L2 norms, ``var`` per tensor;
- ``compiled``: one ``torch.compile``d function (inductor, default mode, ``dynamic=False``) over
  the whole list, every statistic of a tensor from its elements in one generated loop; its compile
  time and the number of graphs compiled are printed apart;
- ``floor``: ``_foreach_norm`` over the gradients and over the weights (two norm passes).

Repetitions are interleaved (the methods in a rotating order), each a block of calls; a cell is the
median over repetitions. Before timing, every method's numbers are compared with ``per-tensor``'s.

Example:
    >>> import torch
    >>> ps = [torch.ones(3, 2), torch.zeros(4)]
    >>> sorted(METHODS["foreach"](ps, ps, EVERY)[0])
    ['abs_mean', 'nonfinite', 'norm', 'var', 'zero_frac']

Run: ``python benchmarks/fused_stats.py [--reps 15 --calls 20] [--no-compile]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from _lightning_workloads import SCALES
from tripwire.callbacks.torch import reductions
from tripwire.callbacks.torch.reductions import TENSOR_STATS, tensor_stats

DEFAULT = ({"norm", "abs_mean"}, {"nonfinite"})  # (gradients, weights): the default rules' needs
EVERY = (set(TENSOR_STATS), set(TENSOR_STATS))
Stats = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


def _tripwire(grouped: bool) -> Callable[[list, list, tuple], Stats]:
    def run(grads: list, weights: list, want: tuple) -> Stats:
        before = reductions.cpu_grouped_stats
        reductions.cpu_grouped_stats = grouped and before
        try:
            return tensor_stats(grads, want[0]), tensor_stats(weights, want[1])
        finally:
            reductions.cpu_grouped_stats = before
    return run


def _one_pass(xs: list[torch.Tensor], want: frozenset[str]) -> dict[str, torch.Tensor]:
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in want}
    for x in xs:
        x = x.float()
        n = max(x.numel(), 1)
        if "norm" in want or "nonfinite" in want:
            l2 = x.square().sum().sqrt()
            for k in {"norm", "nonfinite"} & want:
                cols[k].append(l2 if k == "norm" else (~torch.isfinite(l2)).float())
        if "abs_mean" in want:
            cols["abs_mean"].append(x.abs().sum() / n)
        if "zero_frac" in want:
            cols["zero_frac"].append((x == 0).sum().float() / n)
        if "var" in want:
            cols["var"].append((x - x.sum() / n).square().sum() / n)
    return {k: torch.stack(v) for k, v in cols.items()}


_compiled: dict[frozenset, Callable] = {}


def compiled(grads: list, weights: list, want: tuple) -> Stats:
    """Both lists through a ``torch.compile``d :func:`_one_pass` (one compiled function per set)."""
    out = []
    for xs, w in zip((grads, weights), want):
        w = frozenset(w)
        if w not in _compiled:
            _compiled[w] = torch.compile(lambda xs, w=w: _one_pass(xs, w), dynamic=False)
        out.append(_compiled[w](xs))
    return out[0], out[1]


def floor(grads: list, weights: list, want: tuple) -> Stats:
    return ({"norm": torch.stack(torch._foreach_norm(grads))},
            {"norm": torch.stack(torch._foreach_norm(weights))})


METHODS: dict[str, Callable[[list, list, tuple], Stats]] = {
    "per-tensor": _tripwire(False), "foreach": _tripwire(True), "compiled": compiled, "floor": floor}


def tensors(name: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Gradients (after one backward on a batch) and weights of a CPU workload."""
    workload = SCALES["cpu"][name]
    torch.manual_seed(0)
    net = workload.net()
    x, y = next(iter(workload.loader(1)))
    out = net(x)
    torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)).backward()
    return [p.grad.detach() for p in net.parameters()], [p.detach() for p in net.parameters()]


def largest_difference(a: Stats, b: Stats) -> float:
    """Largest relative difference between two methods' statistics (NaN where one is NaN alone)."""
    worst = 0.0
    for x, y in zip(a, b):
        for k in x:
            d = ((x[k] - y[k]).abs() / y[k].abs().clamp_min(1e-30)).nan_to_num(0.0)
            worst = max(worst, float(d.max()))
    return worst


def first_call(method: Callable, grads: list, weights: list, want: tuple) -> tuple[float, Stats]:
    start = time.perf_counter()
    result = method(grads, weights, want)
    return time.perf_counter() - start, result


def measure(name: str, methods: list[str], reps: int, calls: int) -> list[str]:
    grads, weights = tensors(name)
    rows = []
    for label, want in (("default", DEFAULT), ("every", EVERY)):
        ref = METHODS["per-tensor"](grads, weights, want)
        notes: dict[str, str] = {}
        usable = []
        for m in methods:
            graphs = _graphs()
            try:
                seconds, result = first_call(METHODS[m], grads, weights, want)
            except Exception as e:  # noqa: BLE001 - torch.compile missing or failing: report and go on
                notes[m] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:60]}"
                continue
            usable.append(m)
            diff = "" if m == "floor" else f"max rel diff {largest_difference(result, ref):.1e}"
            extra = f"; first call {seconds:.2f} s, {_graphs() - graphs} graph(s)" if m == "compiled" else ""
            notes[m] = diff + extra
        times: dict[str, list[float]] = {m: [] for m in usable}
        for r in range(reps):
            for m in usable[r % len(usable):] + usable[:r % len(usable)]:
                start = time.perf_counter()
                for _ in range(calls):
                    METHODS[m](grads, weights, want)
                times[m].append((time.perf_counter() - start) / calls * 1e3)
        base = statistics.median(times["per-tensor"])
        for m in methods:
            if m not in times:
                rows.append(f"| {name} | {label} | {m} | - | - | {notes[m]} |")
                continue
            ms = statistics.median(times[m])
            rows.append(f"| {name} | {label} | {m} | {ms:.3f} | {base / ms:.2f}x | {notes[m]} |")
    return rows


def _graphs() -> int:
    try:
        from torch._dynamo.utils import counters
        return int(counters["stats"]["unique_graphs"])
    except Exception:  # noqa: BLE001 - no dynamo
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20, help="calls per timed block")
    parser.add_argument("--workloads", nargs="+", default=["mlp", "cnn", "transformer"])
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile method")
    args = parser.parse_args()
    torch.set_num_threads(1)
    methods = [m for m in METHODS if not (args.no_compile and m == "compiled")]
    print(f"torch {torch.__version__}, 1 thread, load average {os.getloadavg()[0]:.2f}")
    print("| workload | statistics | method | ms per sampled step | speed-up vs per-tensor | notes |")
    print("|---|---|---|---|---|---|")
    for name in args.workloads:
        for row in measure(name, methods, args.reps, args.calls):
            print(row)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
