"""torch.compile, LightningCLI of either Lightning package, and the quickstart example."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")


from lightning_kit import PACKAGES, Task, blobs, fit, lightning, loader, mlp, task_class, tripwire
from tripwire import LightningTripwire

pytestmark = pytest.mark.torch


def dead_mlp():
    return mlp(dead=0)


def test_compiled_model_keeps_activation_hooks():
    torch.manual_seed(0)
    compiled = torch.compile(Task(dead_mlp()), backend="aot_eager")
    cb = tripwire({"rules": {"dead_relu": {}, "exploding_gradient": {}}}, interval=2)
    fit(compiled, loader(*blobs(n=128)), callback=cb, max_steps=6)
    dead = [f for f in cb.findings if f.rule == "dead_relu"]
    assert dead and "net.1" in dead[0].subject  # the hook ran inside the compiled forward


def cli_model(package: str) -> type:
    """A Task of ``package`` that LightningCLI can build from plain arguments."""

    class CLIModel(task_class(package)):
        def __init__(self, hidden: int = 16, dead: bool = False) -> None:
            super().__init__(dead_mlp() if dead else mlp(hidden=hidden))

        def train_dataloader(self):
            return loader(*blobs(n=128))

    return CLIModel


@pytest.mark.parametrize("package", PACKAGES)
@pytest.mark.parametrize("class_path", ["tripwire.LightningTripwire", "tripwire.callbacks.lightning.LightningTripwire",
                                        "tripwire.callbacks.pytorch_lightning.PLTripwire"])
def test_lightning_cli_builds_the_callback_from_yaml(tmp_path, class_path, package):
    pytest.importorskip("jsonargparse")
    LightningCLI = pytest.importorskip(f"{lightning(package).__name__}.cli").LightningCLI

    config = tmp_path / "cli.yaml"
    config.write_text(f"""
trainer:
  accelerator: cpu
  max_steps: 6
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
  default_root_dir: {tmp_path}
  callbacks:
    - class_path: {class_path}
      init_args:
        config: {{interval: 2, rules: {{dead_relu: {{actions: [alert, stop]}}}}}}
        log_dir: false
model:
  dead: true
""")
    torch.manual_seed(0)
    cli = LightningCLI(cli_model(package), args=["fit", "--config", str(config)],
                       save_config_kwargs={"overwrite": True})
    cb = next(c for c in cli.trainer.callbacks if isinstance(c, LightningTripwire))
    assert cb.monitor.interval == 2 and cb.stopped_by is not None and cb.stopped_by.rule == "dead_relu"
    assert cli.trainer.global_step < 6
    assert cb.monitor.config.log_dir is None  # YAML's false, not a directory named "False"


def test_quickstart_example_stops_the_faulty_run(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "lightning_quickstart.py"
    spec = importlib.util.spec_from_file_location("lightning_quickstart", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    cb = example.run(dead_relus=True, max_steps=60, log_dir=str(tmp_path / "runs"))
    assert cb.stopped_by is not None and cb.stopped_by.rule == "dead_relu"
    assert Path(cb.monitor.record_path).is_file()
