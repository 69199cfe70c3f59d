"""GPU check of the torch collector and `LightningTripwire`: host syncs, bf16 statistics, overhead.

Four sections, each run on its own (one failing still lets the others print):

1. **Host syncs, collector in a plain loop** (bf16 autocast, every rule, a flush every
   5 steps): every collector call, flushes included, runs under
   ``torch.cuda.set_sync_debug_mode("error")``, so a host sync there raises; the model's own
   forward (where tripwire's activation hooks run), backward and optimizer step run under
   ``"warn"``, each sync counted and attributed by its stack (the model may sync by itself, e.g.
   some backward kernels); only the read of a finished flush may wait. Host reads are counted
   too (see ``_sync_count.py``).
2. **Host syncs, Lightning fit** with ``precision="bf16-mixed"``: CUDA syncs (``"warn"`` mode,
   counted) and host reads of a fit without tripwire, with the default config and with every
   rule; each event is attributed to tripwire's flush read, elsewhere in tripwire (must be
   zero), or Lightning/user code. tripwire may add at most one CUDA sync per flush.
3. **Statistics vs a CPU fp32 reference**: (a) the collector in fp32 on the device against the
   same loop on CPU (tight tolerance); (b) a Lightning ``bf16-mixed`` fit on the device against
   the same fit in ``32-true`` on CPU, every statistic of every sampled step (bf16 tolerance).
4. **Overhead** with ``bf16-mixed``: step-time ratio against no callback for tripwire's default
   config, every rule every step, and the floor (one fused norm pass), interleaved repetitions
   timed with CUDA events, and the host time spent inside tripwire's hooks. Repetitions stop
   early when the run nears ``--budget`` seconds.

Without CUDA it prints ``no CUDA device: skipped`` and exits 0. ``--device cpu`` rehearses
every section on the CPU (no sync debug mode there: the host-read count stands in for it).
Exit status: 0 when every section passed (or was skipped), 1 otherwise.

Usage:
    python benchmarks/gpu_check.py                       # on a CUDA machine, about 2-3 minutes
    python benchmarks/gpu_check.py --device cpu --quick  # CPU rehearsal, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn

SYNC_INTERVAL = 5  # flush every 5 steps in the sync sections: steps between flushes must not sync


def versions(device: str) -> str:
    import lightning

    import tripwire

    parts = [f"python {platform.python_version()}", f"torch {torch.__version__} (CUDA {torch.version.cuda})",
             f"lightning {lightning.__version__}", f"tripwire {getattr(tripwire, '__version__', '?')}"]
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        bf16 = "yes" if torch.cuda.is_bf16_supported() else "no"
        parts.append(f"GPU {props.name} (sm_{props.major}{props.minor}, {props.total_memory / 2**30:.0f} GiB, "
                     f"bf16 {bf16}), cuDNN {torch.backends.cudnn.version()}")
    else:
        parts.append(f"CPU rehearsal: {platform.machine()}, {os.cpu_count()} cores")
    return "; ".join(parts)


# section plumbing -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    name: str
    status: str  # PASS, FAIL, ERROR, INFO
    seconds: float


def run_section(name: str, fn: Callable[[], bool | None], outcomes: list[Outcome]) -> None:
    """Run one section; an exception is printed (last frames) and recorded as ERROR."""
    print(f"\n## {name}", flush=True)
    start = time.monotonic()
    try:
        ok = fn()
        status = "INFO" if ok is None else ("PASS" if ok else "FAIL")
    except Exception:  # noqa: BLE001 - a failing section must not hide the others
        print("ERROR:\n" + "".join(traceback.format_exc(limit=-8)).rstrip())
        status = "ERROR"
    outcomes.append(Outcome(name, status, time.monotonic() - start))
    print(f"-> {status} ({time.monotonic() - start:.0f} s)", flush=True)


@contextlib.contextmanager
def strict_syncs(enabled: bool) -> Iterator[None]:
    """``set_sync_debug_mode("error")`` inside: any host sync raises (CUDA only)."""
    if not enabled:
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """No TF32 in matmuls and convolutions, so a CUDA fp32 run is comparable to CPU fp32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# workloads for the correctness sections ------------------------------------------------------------------
def check_workloads():  # dict of Workload
    """Small models covering every hooked family: ReLU/Tanh/Sigmoid MLP on floats, a transformer on tokens."""
    from _lightning_workloads import Transformer, Workload, mlp, tokens
    from tripwire.kit.data import linear_classes

    return {
        "mlp": Workload("mlp", lambda: mlp(24, [64, 64, 64], 5, act=(nn.ReLU, nn.Tanh, nn.Sigmoid)),
                        lambda n: linear_classes(n, 24, 5), 64),
        # no biases: the key bias of attention has an exactly-zero gradient in exact arithmetic, so its share
        # of exact zeros depends on rounding (device, dtype) and would make zero-share comparisons flaky
        "transformer": Workload("transformer", lambda: Transformer(100, 32, 1, 2, ff=128, bias=False),
                                lambda n: tokens(n, 16, 100), 32),
    }


def every_rule_needs(interval: int):  # set[Need]
    from _lightning_monitors import every_rule_config
    from tripwire.monitor import Monitor

    return Monitor(every_rule_config(interval), log_dir=False, framework="torch").needs()


def capturing(cb):  # a LightningTripwire that keeps every sample it evaluates
    cb.samples = []
    process = cb.monitor.process

    def keep(sample):
        cb.samples.append(sample)
        return process(sample)

    cb.monitor.process = keep
    return cb


# 1 and 3a: the collector in a plain loop -------------------------------------------------------------
def collector_loop(workload, device: str, steps: int, interval: int, bf16: bool, strict: bool,
                   seed: int = 0):
    """Train ``workload`` for ``steps`` SGD steps driving a TorchCollector with every rule's needs.

    Returns ``(samples, counter)``. With ``strict`` (CUDA) every collector call, flushes
    included, runs under the ``"error"`` sync debug mode; the model's forward (where the
    activation hooks run), backward and optimizer step run under ``"warn"``, counted and
    attributed, since the model itself may sync (e.g. some backward kernels); only the read of
    a finished flush is allowed to wait.
    """
    from _sync_count import SyncCounter
    from tripwire.callbacks.torch import reductions as torch_reductions
    from tripwire.callbacks.torch.collector import TorchCollector

    cuda = torch.device(device).type == "cuda"
    # on CPU: rehearse the code a CUDA run executes (no host reads between flushes)
    rehearsing, torch_reductions.accelerator_path_on_cpu = torch_reductions.accelerator_path_on_cpu, True
    torch.manual_seed(seed)
    net = workload.net().to(device)
    x, y = workload.tensors(workload.batch * steps)
    batches = [(x[i * workload.batch:(i + 1) * workload.batch].to(device),
                y[i * workload.batch:(i + 1) * workload.batch].to(device)) for i in range(steps)]
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    col = TorchCollector(every_rule_needs(interval))
    col.attach(net)
    col.allocate(torch.device(device))
    autocast = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16)
    tripwire_only = lambda: strict_syncs(strict and cuda)
    counter = SyncCounter(cuda=cuda)
    samples = []
    try:
        with counter:
            with tripwire_only():
                init = col.init_flush()
            if init is not None:
                samples.append(init.sample())
            for step, (xb, yb) in enumerate(batches):
                sampled = step % interval == 0
                with tripwire_only():
                    col.begin_batch((xb, yb), sampled)
                with autocast:
                    loss = nn.functional.cross_entropy(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                with tripwire_only():
                    col.before_optimizer_step(opt)
                opt.step()
                with tripwire_only():
                    col.add_loss(loss)
                    flush = col.flush(step=step, epoch=0) if sampled else col.end_batch()
                if flush is not None:
                    samples.append(flush.sample())
    finally:
        col.detach()
        torch_reductions.accelerator_path_on_cpu = rehearsing
    return samples, counter


def section_collector_syncs(device: str, steps: int) -> bool:
    ok = True
    for name, wl in check_workloads().items():
        try:
            samples, counter = collector_loop(wl, device, steps, SYNC_INTERVAL, bf16=True, strict=True)
        except RuntimeError as exc:  # "called a synchronizing CUDA operation" inside a collector call
            ok = False
            print(f"- {name}: FAIL, {type(exc).__name__}: {exc}\n" + "".join(traceback.format_exc(limit=-6)))
            continue
        flushes = len(samples)
        mode = 'set_sync_debug_mode("error") around every collector call and flush: nothing raised' \
            if device == "cuda" else "CPU: no sync debug mode, host reads only"
        good = counter.violations() == 0 and counter.host["read"] <= flushes and flushes > 0
        ok &= good
        print(f"- {name}: {steps} steps, {flushes} flushes (incl. initial weights); {mode}; "
              f"host reads: {counter.host['read']} in flush reads, {counter.host['tripwire']} elsewhere in tripwire, "
              f"{counter.host['other']} in the loop; CUDA syncs: {counter.cuda['read']} in flush reads, "
              f"{counter.cuda['tripwire']} elsewhere in tripwire, {counter.cuda['other']} in the model/loop "
              f"-> {'ok' if good else 'FAIL'}")
        if counter.sites:
            print(counter.describe_sites())
    return ok


# 2: a Lightning fit --------------------------------------------------------------------------------
def lightning_fit(workload, device: str, precision: str, steps: int, callbacks: list,
                  val_batches: int = 0, lr: float = 0.05, seed: int = 0) -> None:
    from _lightning_workloads import Classifier, quiet, trainer

    torch.manual_seed(seed)
    module = Classifier(workload.net(), lr=lr, optimizer="sgd", momentum=0.0)
    train = workload.loader(steps, device=device)
    val = workload.loader(max(val_batches, 1), device=device)  # training batches: only exercises the hooks
    with quiet():
        trainer(steps, callbacks, device, precision, val_batches=val_batches).fit(
            module, train, val if val_batches else None)


def section_lightning_syncs(device: str, steps: int) -> bool:
    from _lightning_monitors import every_rule_config
    from _sync_count import SyncCounter
    from tripwire import LightningTripwire

    cuda = device == "cuda"
    variants = {"none": lambda: None, "default (interval 10)": lambda: LightningTripwire(None, log_dir=False),
                f"every rule (interval {SYNC_INTERVAL})": lambda: LightningTripwire(every_rule_config(SYNC_INTERVAL),
                                                                                   log_dir=False)}
    ok = True
    print("| workload | tripwire | flushes | CUDA syncs: total / in tripwire outside flush reads | "
          "host reads: framework / flush reads / tripwire elsewhere | verdict |")
    print("|---|---|---:|---:|---:|---|")
    for name, wl in check_workloads().items():
        baseline = None
        for label, make in variants.items():
            cb = make()
            cbs = [capturing(cb)] if cb is not None else []
            counter = SyncCounter(cuda=cuda)
            with counter:
                lightning_fit(wl, device, "bf16-mixed", steps, cbs)
            total = sum(counter.cuda.values())
            flushes = len(cb.samples) if cb is not None else 0
            if baseline is None:
                baseline, verdict = total, "baseline"
            else:
                extra = total - baseline
                good = counter.violations() == 0 and extra <= flushes and 0 < flushes and \
                    counter.host["read"] <= flushes
                ok &= good
                verdict = f"{'ok' if good else 'FAIL'} (+{extra} CUDA syncs vs none)"
            print(f"| {name} | {label} | {flushes} | {total} / {counter.cuda['tripwire']} | "
                  f"{counter.host['other']} / {counter.host['read']} / {counter.host['tripwire']} | {verdict} |")
            if counter.sites:
                print(counter.describe_sites())
    if not cuda:
        print("(CPU: no CUDA sync counts; host reads stand in)")
    return ok


# 3: statistics against a CPU fp32 reference -----------------------------------------------------------
EXACT = {"label_count", "input_count", "token_count", "token_total", "weight_unchanged", "grad_nonfinite",
         "weight_nonfinite", "loss_nonfinite", "amp_skipped", "init_identical_rows"}
SUMMATION = {"input_sum", "input_sumsq", "input_min", "input_max", "init_weight_gain"}


def tolerance(stat: str, ref: float, scale: float, bf16: bool) -> float:
    """Allowed |got - ref| for one value; ``scale`` is the largest |value| of its series at that step."""
    if stat in EXACT:
        return 1e-6 + 1e-6 * abs(ref)
    if stat in SUMMATION:
        return 1e-5 * scale + 1e-4 * abs(ref)
    if stat.endswith("_frac"):  # shares of units/elements: a unit near a threshold may flip under bf16
        return 0.15 if bf16 else 0.02
    if bf16:
        return 0.01 * scale + 0.1 * abs(ref)
    return 1e-5 * scale + 1e-3 * abs(ref)


def merge(samples) -> dict[int, dict[str, dict]]:  # {step: {key: {subject: value}}}
    out: dict[int, dict[str, dict]] = {}
    for s in samples:
        for key, series in s.stats.items():
            out.setdefault(s.step, {}).setdefault(key, {}).update(series)
    return out


def confusion_rows(series: dict) -> dict:
    """Samples per true class (exact: it depends on the labels only)."""
    rows: dict[str, float] = {}
    for cell, v in series.items():
        rows[cell.split(",")[0]] = rows.get(cell.split(",")[0], 0.0) + v
    return rows


def compare(ref_samples, got_samples, bf16: bool) -> tuple[bool, list[str]]:
    """Every value of every step, per statistic the worst |got - ref| / tolerance; missing series fail."""
    ref, got = merge(ref_samples), merge(got_samples)
    worst: dict[str, tuple[float, str, int]] = {}
    counts: dict[str, int] = {}
    problems = []
    if set(ref) != set(got):
        problems.append(f"sampled steps differ: reference {sorted(ref)}, device {sorted(got)}")
    for step in sorted(set(ref) & set(got)):
        missing = set(ref[step]) ^ set(got[step])
        if missing:
            problems.append(f"step {step}: series only on one side: {sorted(missing)}")
        for key in sorted(set(ref[step]) & set(got[step])):
            r, g = ref[step][key], got[step][key]
            stat = key.split("[")[0]
            if stat == "confusion":
                r, g, stat, key = confusion_rows(r), confusion_rows(g), "label_count", "confusion (per true class)"
            if set(r) != set(g):
                problems.append(f"step {step} {key}: subjects differ: {sorted(set(r) ^ set(g))[:5]}")
            scale = max((abs(v) for v in r.values() if math.isfinite(v)), default=0.0)
            for subject in set(r) & set(g):
                a, b = r[subject], g[subject]
                if math.isnan(a) and math.isnan(b):
                    err = 0.0
                else:
                    tol = tolerance(stat, a, scale, bf16)
                    err = abs(b - a) / tol if tol > 0 else (0.0 if a == b else math.inf)
                    err = math.inf if math.isnan(err) else err
                counts[key] = counts.get(key, 0) + 1
                if err >= worst.get(key, (-1.0, "", 0))[0]:
                    worst[key] = (err, f"{subject} ref {a:.6g} got {b:.6g}", step)
    lines = [f"| {key} | {counts[key]} | {err:.2f} | step {step}: {where} |"
             for key, (err, where, step) in sorted(worst.items())]
    bad = [k for k, (e, _, _) in worst.items() if e > 1]
    ok = not problems and not bad and bool(worst)
    head = ["| series | values | worst err/tol | where |", "|---|---:|---:|---|"]
    tail = [f"- {p}" for p in problems[:8]] + ([f"- over tolerance: {', '.join(bad)}"] if bad else [])
    return ok, head + lines + tail


def section_stats(device: str, steps: int) -> bool:
    from _lightning_monitors import every_rule_config
    from tripwire import LightningTripwire

    ok = True
    for name, wl in check_workloads().items():
        with full_fp32():
            got, _ = collector_loop(wl, device, steps, 1, bf16=False, strict=False)
        ref, _ = collector_loop(wl, "cpu", steps, 1, bf16=False, strict=False)
        good, lines = compare(ref, got, bf16=False)
        ok &= good
        print(f"\n(a) {name}: collector, fp32 on {device} vs fp32 on cpu, {steps} steps, tolerance ~1e-3 relative "
              f"-> {'ok' if good else 'FAIL'}")
        print("\n".join(lines if not good else lines[:2] + sorted(lines[2:], key=_err, reverse=True)[:6]))
    for name, wl in check_workloads().items():
        runs = []
        for dev, precision in ((device, "bf16-mixed"), ("cpu", "32-true")):
            cb = capturing(LightningTripwire(every_rule_config(1), log_dir=False))
            lightning_fit(wl, dev, precision, steps, [cb], val_batches=2)
            runs.append(cb.samples)
        good, lines = compare(runs[1], runs[0], bf16=True)
        ok &= good
        print(f"\n(b) {name}: Lightning bf16-mixed on {device} vs 32-true on cpu, every rule, {steps} steps + "
              f"validation -> {'ok' if good else 'FAIL'}")
        print("\n".join(lines))
    return ok


def _err(line: str) -> float:
    try:
        return float(line.split("|")[3])
    except (IndexError, ValueError):
        return -1.0


# 4: overhead ----------------------------------------------------------------------------------------
def section_overhead(device: str, quick: bool, reps: int, deadline: float) -> bool | None:
    from _lightning_monitors import VARIANTS
    from _lightning_timing import interleaved
    from _lightning_workloads import SCALES
    from _timing import fmt_ratio, spread

    scale = SCALES["quick" if quick else ("gpu" if device == "cuda" else "cpu")]
    steps, warmup, block = (20, 2, 10) if quick else (60, 10, 10)  # fits are short: Trainer setup dominates
    reps = min(reps, 2) if quick else reps
    precision = "bf16-mixed" if device == "cuda" else "32-true"  # CPU bf16 is emulated on most CPUs: slow
    columns = ["default", "every", "floor"]
    print(f"precision {precision}, up to {reps} interleaved reps x {steps} steps (+{warmup} warm-up); "
          f"cells: median ratio to no callback ± half IQR")
    print("| workload | baseline ms/step | reps | " + " | ".join(VARIANTS[c].label for c in columns)
          + " | host ms/step in tripwire's hooks: default / every rule |")
    print("|---|---:|---:|" + "---:|" * len(columns) + "---:|")
    names, failed = [n for n in scale if n != "mlp_wide"], False  # the wide MLP is the CPU benchmark's, on request
    for i, name in enumerate(names):
        share = deadline - (deadline - time.monotonic()) * (len(names) - i - 1) / (len(names) - i)
        try:
            r = interleaved(scale[name], ["none", *columns], reps, steps, warmup, block, device=device,
                            precision=precision, warm_round=not quick, deadline=share)
        except Exception as exc:  # noqa: BLE001 - the other workloads still run
            failed = True
            print(f"| {name} | error: {type(exc).__name__}: {str(exc)[:200]} |", flush=True)
            continue
        cells = [f"{fmt_ratio(r.ratio[c])} ±{spread(r.per_rep[c]):.3f}" for c in columns]
        cells.append(f"{r.hook_ms['default']:.3f} / {r.hook_ms['every']:.3f}")
        print(f"| {name} | {r.baseline_ms:.2f} | {len(r.per_rep['none'])} | " + " | ".join(cells) + " |", flush=True)
    return False if failed else None  # numbers are information: no pass/fail unless a workload broke


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="cuda (default); cpu rehearses every section without a GPU")
    parser.add_argument("--quick", action="store_true", help="fewer steps and tiny overhead workloads")
    parser.add_argument("--reps", type=int, default=5, help="overhead repetitions (fewer if time runs out)")
    parser.add_argument("--budget", type=float, default=170.0, help="seconds; the overhead section stops adding "
                        "repetitions when the run gets near it")
    args = parser.parse_args(argv)
    started = time.monotonic()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"no CUDA device: skipped (torch {torch.__version__}, built with CUDA {torch.version.cuda})")
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    if args.device == "cpu":
        torch.set_num_threads(1)  # a rehearsal on a small shared machine: no thread contention
        from tripwire.callbacks.torch import reductions as torch_reductions

        torch_reductions.accelerator_path_on_cpu = True  # run the code a CUDA run executes
    print("# tripwire GPU check\n")
    try:
        print(versions(args.device), flush=True)
    except Exception as exc:  # noqa: BLE001 - the report must go on
        print(f"versions: could not read all of them ({type(exc).__name__}: {exc}); torch {torch.__version__}")
    steps = 10 if args.quick else 30
    outcomes: list[Outcome] = []
    run_section("1. host syncs: collector in a plain loop (bf16 autocast, every rule)",
                lambda: section_collector_syncs(args.device, steps), outcomes)
    run_section("2. host syncs: Lightning fit (bf16-mixed)", lambda: section_lightning_syncs(args.device, steps),
                outcomes)
    run_section("3. statistics vs CPU fp32 reference", lambda: section_stats(args.device, 4 if args.quick else 8),
                outcomes)
    run_section("4. overhead (bf16-mixed on CUDA)",
                lambda: section_overhead(args.device, args.quick, args.reps, started + args.budget - 5), outcomes)
    print("\n## summary")
    for o in outcomes:
        print(f"- {o.status:5} {o.name} ({o.seconds:.0f} s)")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0 if all(o.status in ("PASS", "INFO") for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
