"""Item 8: secrets and hostile strings, end to end through a real Lightning run.

The webhook URL carries a token in its path and query (interpolated from the environment, as
a user would write ``url: ${SLACK_HOOK}``) and points at a server that answers 500; the SMTP
server requires a login and the password comes from an environment variable, but is refused.
Both channels fail on every finding, so every error path runs. The model's layers are named
with HTML and script. Afterwards the secrets must appear nowhere a user or an attacker could
read them, and the report must show the layer names only as text.
"""

from __future__ import annotations

import html
import logging
import secrets

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightning")
controller_mod = pytest.importorskip("aiosmtpd.controller")

from aiosmtpd.smtp import AuthResult
from lightning.pytorch.loggers import CSVLogger
from torch import nn

import fault_servers
from figures import check
from lightning_kit import Task, blobs, loader, trainer, tripwire
from tripwire.report import write_report

pytestmark = pytest.mark.torch

SCRIPT = "x<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


class Hostile(nn.Module):
    """Linear -> ReLU -> Linear, the first two registered under HTML names; the ReLU is dead."""

    def __init__(self) -> None:
        super().__init__()
        self.add_module(SCRIPT, nn.Linear(8, 16))
        self.add_module(IMG, nn.ReLU())
        self.head = nn.Linear(16, 3)
        with torch.no_grad():
            self._modules[SCRIPT].bias.fill_(-20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self._modules[IMG](self._modules[SCRIPT](x)))


class Mailbox:
    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's naming
        return "250 OK"


@pytest.fixture
def smtp_requiring_login():
    def refuse(server, session, envelope, mechanism, auth_data) -> AuthResult:
        return AuthResult(success=False, handled=False)

    port = fault_servers.refused_port()
    controller = controller_mod.Controller(Mailbox(), hostname="127.0.0.1", port=port, authenticator=refuse,
                                           auth_require_tls=False, auth_required=True)
    controller.start()
    yield f"127.0.0.1:{port}"
    controller.stop()


@pytest.fixture
def webhook_500():
    proc, port = fault_servers.start("500")
    yield port
    proc.kill()
    proc.wait()


def test_secrets_stay_out_and_names_are_escaped(tmp_path, monkeypatch, caplog, capsys, webhook_500,
                                                smtp_requiring_login):
    token, query, user, password = (f"{kind}-{secrets.token_hex(8)}" for kind in ("TOK", "SIG", "USR", "PWD"))
    monkeypatch.setenv("FAULT_HOOK", f"http://127.0.0.1:{webhook_500}/services/{token}?sig={query}")
    monkeypatch.setenv("FAULT_SMTP_USER", user)
    monkeypatch.setenv("FAULT_SMTP_PASSWORD", password)
    caplog.set_level(logging.DEBUG, logger="tripwire")
    config = f"""
interval: 2
rules:
  dead_relu: {{patience: 1, actions: [alert]}}
  vanishing_gradient: {{patience: 1, actions: [alert]}}
  flapping: {{type: "user_rules:Flapping", actions: [alert]}}
actions:
  console: {{}}
  webhook: {{url: "${{FAULT_HOOK}}", retries: 1, backoff_s: 0.05, timeout_s: 2}}
  email: {{smtp: "{smtp_requiring_login}", to: [oncall@example.com], username_env: FAULT_SMTP_USER,
          password_env: FAULT_SMTP_PASSWORD, timeout_s: 5}}
"""
    torch.manual_seed(0)
    cb = tripwire(config, log_dir=tmp_path / "runs")
    tr = trainer([cb], max_steps=20, logger=CSVLogger(tmp_path / "csv"))
    tr.fit(Task(Hostile()), loader(*blobs(n=512)))
    tr.save_checkpoint(tmp_path / "end.ckpt")
    run_dir = tmp_path / "runs" / next((tmp_path / "runs").iterdir()).name
    record_bytes = b"".join(p.read_bytes() for p in sorted(run_dir.iterdir()))
    page = write_report(run_dir).read_text(encoding="utf-8")
    out, err = capsys.readouterr()

    assert {"dead_relu", "vanishing_gradient", "flapping"} <= {f.rule for f in cb.findings}
    assert any(IMG in (f.subject or "") for f in cb.findings) and any(SCRIPT in (f.subject or "") for f in cb.findings)
    failures = [r.getMessage() for r in caplog.records if "not delivered" in r.getMessage()]
    assert any(m.startswith("tripwire: webhook") for m in failures) and any("e-mail" in m for m in failures)
    places = {
        "log messages": caplog.text.encode(),
        "stdout": out.encode(),
        "stderr": err.encode(),
        "run record": record_bytes,
        "report": page.encode(),
        "checkpoint": (tmp_path / "end.ckpt").read_bytes(),
        "logger files": b"".join(p.read_bytes() for p in (tmp_path / "csv").rglob("*") if p.is_file()),
    }
    leaks = [(where, s) for where, data in places.items() for s in (token, query, password) if s.encode() in data]
    check("secrets.places_checked", len(places))
    check("secrets.leaks", len(leaks))

    unescaped = [name for name in (SCRIPT, IMG) if name in page]
    check("secrets.unescaped_markup", len(unescaped) + (page.count("<script") != 4))
    assert html.escape(SCRIPT) in page and html.escape(IMG) in page  # shown, as text
