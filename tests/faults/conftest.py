"""Fault-injection suite: shared setup.

Puts ``tests/faults`` (user rules, fault servers, figures) and ``tests/torch_lightning`` (the tiny
Lightning models of ``lightning_kit``) on ``sys.path``, keeps urllib away from proxies, and at
the end of the session writes the measured figures (see :mod:`figures`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for path in (HERE, HERE.parent / "torch_lightning"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import figures


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: torch's intra-op threads only spin and contend
    (with them a 0.3 s fit takes 2-10 s under load); one thread makes the timings meaningful."""
    try:
        import torch
    except ImportError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib would send 127.0.0.1 requests to a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    measured = figures.session_figures()
    if not measured:
        return
    figures.SESSION_OUT.write_text(json.dumps({"machine": figures.machine(), "values": measured}, indent=1))
    if os.environ.get("TRIPWIRE_UPDATE_FIGURES") == "1" and exitstatus == 0:
        figures.update_store(measured, long=False)
