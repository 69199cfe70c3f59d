"""Broken alert endpoints, each in a process of its own (like a real remote server, it takes no
CPU time or GIL from the training process under test).

``python fault_servers.py hang`` accepts TCP connections and never answers; ``python
fault_servers.py 500`` answers every HTTP request with ``500 Internal Server Error``. Each
prints its port on the first line of stdout and serves until it is killed. :func:`start` runs
one and returns ``(process, port)``; :func:`refused_port` is a port nothing listens on.

Example:
    >>> proc, port = start("500")
    >>> import urllib.request, urllib.error
    >>> try:
    ...     urllib.request.urlopen(f"http://127.0.0.1:{port}/x", data=b"{}", timeout=5)
    ... except urllib.error.HTTPError as exc:
    ...     print(exc.code)
    500
    >>> proc.kill(); _ = proc.wait()
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def refused_port() -> int:
    """A port nothing listens on: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(kind: str) -> tuple[subprocess.Popen, int]:
    """Start a ``hang`` or ``500`` server; its process and port."""
    proc = subprocess.Popen([sys.executable, __file__, kind], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"fault server {kind!r} did not start: {line!r}")
    return proc, int(line)


def _serve_hang() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    print(listener.getsockname()[1], flush=True)
    held = []
    while True:
        conn, _ = listener.accept()
        held.append(conn)  # keep it open, read nothing, answer nothing


def _serve_500() -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    {"hang": _serve_hang, "500": _serve_500}[sys.argv[1]]()
