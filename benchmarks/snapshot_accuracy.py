"""How close the sampled weight snapshot's ``update_ratio`` is to the exact one.

Trains the CPU benchmark workloads (MLP, CNN, transformer of ``_lightning_workloads.SCALES``) in a
plain loop with Adam and measures ``update_ratio`` on every step twice, with the default snapshot
(tensors above ``SNAPSHOT_ELEMENTS`` elements through a fixed sample) and with an exact one. Prints,
per workload, the sampled tensors, their share of the parameters, the median and largest relative
error, and the memory each snapshot keeps.

Run: ``python benchmarks/snapshot_accuracy.py [--steps 50]``.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from _lightning_workloads import SCALES
from tripwire.callbacks.torch.element_sample import SNAPSHOT_ELEMENTS, ElementSample
from tripwire.callbacks.torch.params import ParamProbe
from tripwire.stats import Need


def _ratios(probe: ParamProbe) -> dict[str, float]:
    out: dict[str, float] = {}
    for piece in probe.pieces():
        out.update(piece.read(piece.values.tolist()).get("update_ratio", {}))
    return out


def _kept_bytes(probe: ParamProbe) -> int:
    kept = list(probe._snap or []) + list(probe.elements._index.values())
    return sum(t.numel() * t.element_size() for t in kept)


def measure(name: str, steps: int) -> str:
    workload = SCALES["cpu"][name]
    torch.manual_seed(0)
    net = workload.net()
    sampled, exact = ParamProbe(net, [Need("update_ratio")]), ParamProbe(net, [Need("update_ratio")])
    exact.elements = ElementSample(cap=10 ** 12)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    errors: list[float] = []
    for x, y in workload.loader(steps):
        out = net(x)
        torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1)).backward()
        for probe in (sampled, exact):
            probe.before_step(opt)
        opt.step()
        opt.zero_grad()
        estimate, truth = _ratios(sampled), _ratios(exact)
        errors += [abs(estimate[k] / truth[k] - 1) for k, p in net.named_parameters()
                   if p.numel() > SNAPSHOT_ELEMENTS and k in truth and truth[k] > 0]
    big = [p.numel() for p in net.parameters() if p.numel() > SNAPSHOT_ELEMENTS]
    total = sum(p.numel() for p in net.parameters())
    return (f"| {name} | {len(big)} of {len(list(net.parameters()))} | {sum(big) / total:.0%} | "
            f"{statistics.median(errors):.2%} | {max(errors):.2%} | {_kept_bytes(sampled) / 1e6:.2f} MB | "
            f"{_kept_bytes(exact) / 1e6:.2f} MB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| workload | tensors sampled | share of parameters | median error | largest error | "
          "snapshot kept | exact snapshot |")
    print("|---|---|---|---|---|---|---|")
    for name in ("mlp", "cnn", "transformer"):
        print(measure(name, args.steps))


if __name__ == "__main__":
    main()
