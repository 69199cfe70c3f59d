"""The torch benchmark scripts (Lightning, plain loop) run end to end at their ``--quick`` setting,
so they cannot rot, and the CPU-runnable parts of ``gpu_check.py`` (host-sync counting, the
statistics comparison) do what they claim, including failing when they should."""

import importlib.util
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

pytestmark = pytest.mark.torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import gpu_check
from _sync_count import TRIPWIRE_DIR, SyncCounter, is_host_read
from tripwire.stats import Sample


def run_script(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, str(BENCH / args[0]), *args[1:]], capture_output=True, text=True,
                          timeout=timeout, cwd=BENCH.parent, env=env)


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Each Markdown table in ``text`` as rows of cells (the separator row left out)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_overhead_spike_quick_prints_the_ratios_and_the_time_in_tripwire():
    r = run_script("overhead_spike.py", "--quick", "--reps", "1")
    assert r.returncode == 0, r.stderr[-3000:]
    ratios, in_hooks = markdown_tables(r.stdout)
    labels = ["loss_spike every step", "loss_spike, loss only", "loss_spike + skip_step", "loss_spike + rollback"]
    assert ratios[0] == ["workload", "baseline ms/step", "no monitor (A/A)", *labels, "gradient norm alone"]
    assert in_hooks[0] == ["workload", *(f"in tripwire, {label}" for label in labels),
                           "in the norm, gradient norm alone"]
    for row in in_hooks[1:]:
        assert all(float(re.fullmatch(r"(\d+\.\d{3}) ms \(\d+\.\d{2}%\)", c).group(1)) > 0 for c in row[1:])


def test_fused_stats_prints_every_method_agreeing_with_the_per_tensor_path():
    r = run_script("fused_stats.py", "--no-compile", "--reps", "1", "--calls", "1", "--workloads", "mlp")
    assert r.returncode == 0, r.stderr[-3000:]
    (table,) = markdown_tables(r.stdout)
    rows = table[1:]
    assert [(w, s, m) for w, s, m, *_ in rows] == [("mlp", s, m) for s in ("default", "every")
                                                   for m in ("per-tensor", "foreach", "floor")]
    for *_, ms, speedup, notes in rows:
        assert float(ms) > 0 and speedup.endswith("x")
        if "max rel diff" in notes:
            assert float(notes.split("max rel diff ")[1]) <= 1e-5


def test_sample_python_quick_prints_the_ms_per_sample_of_every_part():
    r = run_script("sample_python.py", "--quick")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("cProfile of one replay of process") == 3
    (table,) = markdown_tables(r.stdout)
    assert table[0] == ["workload", "samples", "values/sample", "read ms", "sample ms", "process ms",
                        "process+record ms"]
    assert [row[0] for row in table[1:]] == ["mlp", "cnn", "transformer"]
    for row in table[1:]:  # the initial-weight sample and steps 0, 10, 20, 30
        assert row[1] == "5" and all(float(cell) > 0 for cell in row[2:])


def test_overhead_lightning_quick_prints_full_tables_and_the_verdicts():
    r = run_script("overhead_lightning.py", "--quick")
    assert r.returncode == 0, r.stderr[-3000:]
    ratios, in_hooks, kept = markdown_tables(r.stdout)
    labels = ["no callback (A/A)", "tripwire default", "tripwire default, interval 10",
              "tripwire default, interval 1000",
              "tripwire every rule, every step", "grad_norm logged", ".item() monitor", "floor (fused norms)"]
    assert ratios[0] == ["workload", "baseline ms/step", *labels]
    assert [row[0] for row in ratios[1:]] == ["mlp", "cnn", "transformer"]
    for row in ratios[1:]:
        assert float(row[1]) > 0
        values = [float(re.fullmatch(r"(\d+\.\d{3})x ±\d+\.\d{3}", c).group(1)) for c in row[2:]]
        assert len(values) == 8 and all(0 < x < 100 for x in values)
    assert in_hooks[0] == ["workload", *labels[1:]]
    for row in in_hooks[1:]:
        ms = [float(re.fullmatch(r"(\d+\.\d{3}) ms \(\d+\.\d%\)", c).group(1)) for c in row[1:]]
        assert all(x > 0 for x in ms)  # each monitor's hooks ran and were timed (tripwire's included)
    tripwires = [label for label in labels if label.startswith("tripwire")]
    assert kept[0] == ["workload", "parameters", *(f"{label}: interval, kept" for label in tripwires)]
    for row in kept[1:]:
        assert float(re.fullmatch(r"(\d+\.\d{3}) MB", row[1]).group(1)) > 0
        for cell in row[2:]:
            intervals, held = re.fullmatch(r"(\d+(?:/\d+)*), (\d+\.\d{3}) MB", cell).groups()
            assert all(int(i) >= 1 for i in intervals.split("/")) and float(held) > 0
    assert re.search(r"default config <= 1\.02x: mlp .* -> (HOLDS|FAILS)", r.stdout)
    assert re.search(r"every rule every step cost <= 1\.5x the floor's cost: .* -> (HOLDS|FAILS|UNDECIDED)", r.stdout)


def test_overhead_torch_quick_prints_every_column_with_finite_ratios():
    r = run_script("overhead_torch.py", "--quick")
    assert r.returncode == 0, r.stderr[-3000:]
    (ratios,) = markdown_tables(r.stdout)
    labels = ["no monitor (A/A)", "tripwire default", "tripwire every rule, every step", "wandb.watch all, log_freq=1",
              "wandb.watch all, log_freq=10", "wandb.log(loss) only", "grad_norm .item()", "floor (fused norms)"]
    assert ratios[0] == ["workload", "baseline ms/step", *labels]
    assert [row[0] for row in ratios[1:]] == ["mlp", "cnn", "transformer"]
    has_wandb = importlib.util.find_spec("wandb") is not None  # not a dependency: its columns may be absent
    for row in ratios[1:]:
        assert float(row[1]) > 0
        for label, cell in zip(labels, row[2:], strict=True):
            if label.startswith("wandb") and not has_wandb:
                assert cell == "wandb not installed"
                continue
            value = float(re.fullmatch(r"(\d+\.\d{3})x ±\d+\.\d{3}", cell).group(1))
            assert math.isfinite(value) and 0 < value < 1000, (label, cell)
    assert re.search(r"default config <= 1\.02x: mlp .* -> (HOLDS|FAILS)", r.stdout)
    assert re.search(r"every rule every step cost <= 1\.5x the floor's cost: .* -> (HOLDS|FAILS|UNDECIDED)", r.stdout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present: the skip path does not apply")
def test_gpu_check_without_cuda_skips_cleanly():
    r = run_script("gpu_check.py", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().startswith("no CUDA device: skipped")


def test_gpu_check_rehearses_every_section_on_cpu():
    r = run_script("gpu_check.py", "--device", "cpu", "--quick")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    summary = r.stdout.split("## summary")[1]
    for section in ("1. host syncs: collector", "2. host syncs: Lightning", "3. statistics", "4. overhead"):
        assert re.search(rf"- (PASS|INFO) +{re.escape(section)}", summary), summary
    assert "ERROR" not in r.stdout
    assert re.search(r"\| mlp \| every rule \(interval 5\) \| \d+ \|", r.stdout)


# sync counting -------------------------------------------------------------------------------------
def run_as(relative_path: str, function: str, body: str, **names):
    """Run ``body`` as a function compiled with a filename inside the tripwire package, so that the
    counter attributes what it does to tripwire (without touching the package)."""
    source = f"def {function}():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    scope = dict(names)
    exec(compile(source, os.path.join(TRIPWIRE_DIR, relative_path), "exec"), scope)  # noqa: S102 - the test's own code, under a tripwire file name
    return scope[function]()


def test_sync_counter_attributes_reads_to_the_flush_read_to_tripwire_and_to_other_code():
    t = torch.arange(6.0)
    with SyncCounter() as c:
        t.sum().item()  # here: other code
        run_as("callbacks/torch/packing.py", "read", "return t.tolist()", t=t)
        run_as("callbacks/torch/params.py", "pieces", "return bool(t.any()), t[t > 2]", t=t)
        t * 2, t.reshape(2, 3), torch.segment_reduce(t, "sum", lengths=torch.tensor([3, 3]), unsafe=True)
    assert (c.host["other"], c.host["read"], c.host["tripwire"]) == (1, 1, 2)
    assert c.violations() == 2
    assert "callbacks/torch/params.py" in c.describe_sites() and "__bool__" in c.describe_sites()


def test_host_read_classification():
    t, idx = torch.ones(4), torch.tensor([1, 3])
    assert is_host_read("tensor", ([t.sum(), t.sum()],), {})
    assert not is_host_read("tensor", ([1.0, 2.0],), {})
    assert is_host_read("repeat_interleave", (t, idx), {}) and not is_host_read("repeat_interleave", (t, idx),
                                                                                 {"output_size": 4})
    assert is_host_read("segment_reduce", (t, "sum"), {}) and not is_host_read("segment_reduce", (t, "sum"),
                                                                             {"unsafe": True})
    assert is_host_read("__getitem__", (t, t > 0), {}) and not is_host_read("__getitem__", (t, idx), {})
    assert not is_host_read("to", (t, "cpu"), {})  # a CPU tensor: no transfer


def test_collector_loop_reads_once_per_flush_and_nowhere_else():
    wl = gpu_check.check_workloads()["mlp"]
    samples, counter = gpu_check.collector_loop(wl, "cpu", steps=6, interval=3, bf16=False, strict=False)
    assert [s.step for s in samples] == [0, 0, 3]  # initial weights, then every 3 steps
    assert counter.host["read"] == len(samples)
    assert counter.violations() == 0


def test_collector_loop_counter_catches_a_host_read_in_the_collector(monkeypatch):
    from tripwire.callbacks.torch.collector import TorchCollector

    def add_loss(self, loss):  # a collector that reads the loss on the host every step
        return run_as("callbacks/torch/collector.py", "add_loss", "return float(loss.detach())", loss=loss)

    monkeypatch.setattr(TorchCollector, "add_loss", add_loss)
    wl = gpu_check.check_workloads()["mlp"]
    _, counter = gpu_check.collector_loop(wl, "cpu", steps=4, interval=2, bf16=False, strict=False)
    assert counter.host["tripwire"] == 4 and counter.violations() == 4


# statistics comparison -------------------------------------------------------------------------------
def sample(step, **stats):
    return Sample(step=step, epoch=0, stats=stats)


def test_compare_accepts_bf16_noise_and_rejects_real_differences():
    ref = [sample(0, grad_norm={"w": 1.0, "b": 0.01}, label_count={"0": 5.0, "1": 3.0},
                  confusion={"0,0": 4.0, "0,1": 1.0, "1,1": 3.0})]
    noisy = [sample(0, grad_norm={"w": 1.03, "b": 0.0102}, label_count={"0": 5.0, "1": 3.0},
                    confusion={"0,0": 3.0, "0,1": 2.0, "1,1": 3.0})]  # a flipped prediction: rows still match
    assert gpu_check.compare(ref, noisy, bf16=True)[0]
    assert not gpu_check.compare(ref, noisy, bf16=False)[0]  # fp32 tolerance is tight
    wrong = [sample(0, grad_norm={"w": 1.5, "b": 0.01}, label_count={"0": 5.0, "1": 3.0},
                    confusion={"0,0": 4.0, "0,1": 1.0, "1,1": 3.0})]
    ok, lines = gpu_check.compare(ref, wrong, bf16=True)
    assert not ok and any("over tolerance: grad_norm" in line for line in lines)
    short = [sample(0, grad_norm={"w": 1.0, "b": 0.01}, label_count={"0": 5.0, "1": 3.0})]
    ok, lines = gpu_check.compare(ref, short, bf16=True)
    assert not ok and any("only on one side: ['confusion']" in line for line in lines)
    miscounted = [sample(0, grad_norm={"w": 1.0, "b": 0.01}, label_count={"0": 5.0, "1": 4.0},
                         confusion={"0,0": 4.0, "0,1": 1.0, "1,1": 3.0})]
    assert not gpu_check.compare(ref, miscounted, bf16=True)[0]  # counts are exact even under bf16


def test_long_run_quick_measures_both_parts(tmp_path):
    r = run_script("long_run.py", "--quick", "--log-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    [table] = markdown_tables(r.stdout)
    header, train, stream = table
    assert header[:3] == ["part", "tripwire", "schema"]
    assert train[0].startswith("train:") and stream[0].startswith("stream:")
    row = dict(zip(header, stream))
    assert row["schema"] == "2" and float(row["bytes_per_value"]) < 16 and float(row["report_mb"]) > 1
    assert (tmp_path / "stream" / "report.html").is_file() and (tmp_path / "train" / "record.sqlite").is_file()
