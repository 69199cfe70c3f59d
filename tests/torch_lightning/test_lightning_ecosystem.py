"""torch.compile, the standalone pytorch_lightning package, and LightningCLI."""

import pytest

pytest.importorskip("lightning")
torch = pytest.importorskip("torch")

from torch import nn

from lightning_kit import Task, blobs, fit, loader, mlp, rules_fired, tripwire
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


def test_pytorch_lightning_package():
    pl = pytest.importorskip("pytorch_lightning")
    from tripwire.callbacks.lightning import PLTripwire

    class PLTask(pl.LightningModule):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    cb = PLTripwire({"rules": {"dead_relu": {}}}, interval=2, log_dir=False)
    pl.Trainer(accelerator="cpu", max_steps=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False, callbacks=[cb]).fit(PLTask(dead_mlp()), loader(*blobs(n=128)))
    assert rules_fired(cb) == {"dead_relu"}

    wrong = LightningTripwire(log_dir=False)
    with pytest.raises(TypeError, match="pytorch_lightning"):
        pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                   callbacks=[wrong]).fit(PLTask(mlp()), loader(*blobs(n=64)))


class CLIModel(Task):
    """A Task LightningCLI can build from plain arguments."""

    def __init__(self, hidden: int = 16, dead: bool = False) -> None:
        super().__init__(dead_mlp() if dead else mlp(hidden=hidden))

    def train_dataloader(self):
        return loader(*blobs(n=128))


@pytest.mark.parametrize("class_path", ["tripwire.LightningTripwire", "tripwire.callbacks.lightning.LightningTripwire"])
def test_lightning_cli_builds_the_callback_from_yaml(tmp_path, class_path):
    pytest.importorskip("jsonargparse")
    from lightning.pytorch.cli import LightningCLI

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
    cli = LightningCLI(CLIModel, args=["fit", "--config", str(config)], save_config_kwargs={"overwrite": True})
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
