"""Every Python quickstart in the README runs as pasted, given the objects its text names.

Each block is executed unchanged after a prelude that builds those objects (a model, data,
loaders) from :mod:`tripwire.kit` on tiny data, so that each run takes seconds; the README's
``tripwire.yaml`` and the run records go to a temporary working directory. A block that prints
its findings prints one line for each.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the heading of each quickstart -> the framework it needs, and the code that builds what its text names
PRELUDES = {
    "A plain PyTorch loop": ("torch", """
import torch
from tripwire.kit.torch import blobs, loader as batches, mlp
model = mlp(features=8, hidden=16, classes=3, dead=0)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
loss_fn = torch.nn.functional.cross_entropy
loader, val_loader = batches(*blobs(320), batch_size=16), batches(*blobs(64, seed=1), batch_size=32, shuffle=False)
"""),
    "PyTorch Lightning": ("lightning", """
from tripwire.kit.lightning import Classifier
from tripwire.kit.torch import blobs, loader, mlp
model = Classifier(mlp(features=8, hidden=16, classes=3, dead=0))
train_loader, val_loader = loader(*blobs(128), batch_size=32), loader(*blobs(64, seed=1), batch_size=64, shuffle=False)
"""),
    "Keras 3": ("keras", """
from tripwire.kit.data import linear_classes
from tripwire.kit.keras import mlp
model = mlp(features=8, classes=3, hidden=(16,))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
(x_train, y_train), (x_val, y_val) = linear_classes(128, features=8), linear_classes(64, features=8, seed=1)
"""),
    "XGBoost": ("xgboost", """
import xgboost as xgb
from tripwire.kit.data import tabular
(x_train, y_train), (x_val, y_val) = tabular(400, features=6), tabular(200, features=6, seed=1)
dtrain, dval = xgb.DMatrix(x_train, label=y_train), xgb.DMatrix(x_val, label=y_val)
params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "nthread": 1}
"""),
    "Hugging Face Trainer": ("transformers", """
from hf_kit import bert, examples
model, train_set, val_set = bert(), examples(64), examples(32, seed=1)
"""),
}


def quickstarts() -> dict[str, str]:
    """The heading of each quickstart section -> its Python block, as in the README."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for part in section.split("\n### ")[1:]:
        code = re.findall(r"```python\n(.*?)```", part, re.S)
        assert len(code) == 1, part.splitlines()[0]
        blocks[part.splitlines()[0]] = code[0]
    return blocks


def test_every_quickstart_has_a_prelude():
    assert [next(p for p in PRELUDES if h.startswith(p)) for h in quickstarts()] == list(PRELUDES)


@pytest.mark.parametrize("name", list(PRELUDES))
def test_quickstart_runs_as_pasted(name, tmp_path, monkeypatch, capsys):
    framework, prelude = PRELUDES[name]
    if importlib.util.find_spec(framework) is None:
        pytest.skip(f"{framework} is not installed")
    block = next(code for heading, code in quickstarts().items() if heading.startswith(name))
    readme = (ROOT / "README.md").read_text()
    if "tripwire.yaml" in block:  # the README's own example configuration
        (tmp_path / "tripwire.yaml").write_text(readme.split("```yaml\n", 1)[1].split("```", 1)[0])
    monkeypatch.delenv("TRIPWIRE_WEBHOOK", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "hf"))
    namespace: dict = {}
    exec(compile(prelude, f"<prelude {name}>", "exec"), namespace)  # noqa: S102 - our own README's code
    exec(compile(block, f"<README: {name}>", "exec"), namespace)  # noqa: S102
    variable = "tripwire" if "tripwire" in namespace else "tw"
    callback = namespace[variable]
    lines = [str(f) for f in callback.findings]
    if callback.stopped_by is not None and f"print({variable}.stopped_by)" in block:
        lines.append(str(callback.stopped_by))
    if "print(finding)" in block:
        printed = [line for line in capsys.readouterr().out.splitlines() if line in lines]
        assert printed == lines  # one line per finding, in order
