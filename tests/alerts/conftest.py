"""Real servers on 127.0.0.1 for the alert-channel tests: HTTP, a hanging socket, SMTP.

Every server runs in a daemon thread and is stopped by its fixture; every wait is bounded.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tripwire.finding import Finding

SECRET = "T0KEN-s3cr3t-9f8e7d"  # what a webhook URL hides; must never be logged


def make_finding(**changes) -> Finding:
    """A realistic finding; keyword arguments replace fields."""
    fields = dict(rule="dead_relu", kind="dead_relu", step=120, epoch=1, severity="warning",
                  subject="encoder.act1", value=0.8, threshold=0.5,
                  message="80% of the units of encoder.act1 are dead",
                  suggestion="lower the learning rate or use LeakyReLU",
                  evidence={"dead_fraction": 0.8, "units": 64, "history": [0.1, 0.5, 0.8]})
    fields.update(changes)
    return Finding(**fields)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return predicate()
        time.sleep(0.01)
    return True


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib would send 127.0.0.1 requests to a proxy named in the environment."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@dataclass
class HookServer:
    """A ThreadingHTTPServer that records each POST and answers with ``statuses`` in turn, each
    answer ``delay_s`` after the request arrived. With ``basic_auth=(user, password)`` set it
    answers 401 to a request without that ``Authorization: Basic`` header."""

    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[dict] = field(default_factory=list)
    delay_s: float = 0.0
    basic_auth: tuple[str, str] | None = None
    server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = f"/hooks/{SECRET}") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    state = HookServer()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.requests.append({"path": self.path, "headers": dict(self.headers), "body": raw,
                                       "time": time.monotonic()})
                index = min(len(state.requests), len(state.statuses)) - 1
                status = state.statuses[index]
            if state.basic_auth is not None:
                pair = ":".join(state.basic_auth).encode("utf-8")
                if self.headers.get("Authorization") != "Basic " + base64.b64encode(pair).decode("ascii"):
                    status = 401
            time.sleep(state.delay_s)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    state.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=state.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    state.server.shutdown()
    state.server.server_close()
    thread.join(5)


def body_json(request: dict) -> dict:
    return json.loads(request["body"].decode("utf-8"))


@dataclass
class HangingServer:
    """Accepts connections, reads nothing and never answers."""

    port: int
    accepted: list[socket.socket]


@pytest.fixture
def hanging_server() -> Iterator[HangingServer]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.05)
    stop = threading.Event()
    state = HangingServer(listener.getsockname()[1], [])

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
                state.accepted.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield state
    stop.set()
    thread.join(5)
    for conn in state.accepted:
        conn.close()
    listener.close()


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def refused_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    return free_port()


class MailBox:
    """aiosmtpd handler that keeps each message with its envelope and login."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's naming
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "content": envelope.content, "login": session.login_data})
        return "250 OK"


@dataclass
class SmtpServer:
    box: MailBox
    port: int
    logins: list[tuple[str, str]]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., SmtpServer]]:
    """Factory: ``smtp_server(credentials=("user", "pw"))`` starts a server that requires AUTH."""
    controllers: list[Controller] = []

    def start(credentials: tuple[str, str] | None = None) -> SmtpServer:
        box, logins = MailBox(), []
        kwargs = {}
        if credentials is not None:
            def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
                ok = isinstance(auth_data, LoginPassword)
                if ok:
                    logins.append((auth_data.login.decode(), auth_data.password.decode()))
                    ok = (auth_data.login.decode(), auth_data.password.decode()) == credentials
                return AuthResult(success=ok, handled=False, auth_data=auth_data)

            kwargs = {"authenticator": authenticator, "auth_require_tls": False, "auth_required": True}
        port = free_port()
        controller = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return SmtpServer(box, port, logins)

    yield start
    for controller in controllers:
        controller.stop()
