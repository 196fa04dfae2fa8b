"""Real receivers on loopback for notification tests: an HTTP server that records what it is
sent and answers as scripted (the Slack/Teams/Discord/Telegram/webhook endpoints), an SMTP
server (aiosmtpd), and a real Celery worker."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.services import *  # noqa: F403
from tests.support.workers import platform_env, purge_queues, start_celery_worker, stop, wait_for  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HTTPReceiver:
    """Records every request; answers from ``script`` (status, headers) in turn, then
    ``default``. ``down()`` answers 503 to everything until ``up()``."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, dict[str, str]] = (200, {})
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        with self.lock:
            self.script = [s if isinstance(s, tuple) else (s, {}) for s in statuses]

    def down(self) -> None:
        with self.lock:
            self.default = (503, {"Retry-After": "1"})

    def up(self) -> None:
        with self.lock:
            self.default = (200, {})

    def next_answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def on(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path.startswith(path)]

    def wait_for(self, path: str, count: int = 1, timeout: float = 60.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(path)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{count} request(s) to {path} expected, got {len(self.on(path))}")


@pytest.fixture
def receiver() -> Iterator[HTTPReceiver]:
    holder: dict[str, HTTPReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            recv = holder["r"]
            recv.requests.append(Received("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, headers = recv.next_answer()
            payload = b'{"ok": true}' if status < 300 else b'{"ok": false}'
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["r"] = HTTPReceiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["r"]
    server.shutdown()
    server.server_close()


@dataclass
class SMTPReceiver:
    host: str
    port: int
    messages: list[Any]

    def wait_for(self, count: int = 1, timeout: float = 60.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"{count} e-mail(s) expected, got {len(self.messages)}")


@pytest.fixture
def smtp_receiver() -> Iterator[SMTPReceiver]:
    """aiosmtpd on a free loopback port; every accepted message (envelope) is kept."""
    from aiosmtpd.controller import Controller

    messages: list[Any] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append(envelope)
            return "250 2.0.0 Ok: queued as TEST123"

    with socket.socket() as probe:  # aiosmtpd checks its listener by connecting to the port it was given
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SMTPReceiver("127.0.0.1", port, messages)
    finally:
        controller.stop()


# Short waits so retries, give-ups and grouping windows happen within a test.
WORKER_ENV = {
    "NOTIFY_RETRY_BACKOFF": "1",
    "NOTIFY_RETRY_BACKOFF_MAX": "1",
    "NOTIFY_GIVE_UP_AFTER": "6",
    "NOTIFY_GROUP_WINDOW": "20",
    "NOTIFY_FAILING_AFTER": "1",
    "PUBLIC_BASE_URL": "https://backups.example",
}


@pytest.fixture
def worker(settings) -> Iterator[subprocess.Popen]:
    """A real Celery worker on the test database and this run's Redis."""
    platform_env()  # skips on SQLite: the worker needs the database the test uses
    for key, value in WORKER_ENV.items():
        setattr(settings, key, int(value) if value.isdigit() else value)
    purge_queues()
    proc = start_celery_worker("notify-test", env=WORKER_ENV)
    yield proc
    stop(proc)
