"""The platform's ASGI application served by a real uvicorn process on the test's
PostgreSQL database (and Redis): for tests that need a socket, a browser or a connection pool
across processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def platform_env() -> dict[str, str]:
    """The environment a server process needs to use this test's database (skips on SQLite)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("the live server needs a database the test and server processes share (PostgreSQL)")
    return dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="backupplatform.settings.test",
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
    )


def start_asgi(
    *, port: int | None = None, env: dict[str, str] | None = None, log: Path | None = None, log_level: str = "warning"
) -> tuple[subprocess.Popen, int]:
    """Start uvicorn and wait until it accepts connections; ``env`` is added to
    ``platform_env()``. Fails with the server's log if it exits first."""
    port = port or free_port()
    output = log.open("w") if log is not None else None
    argv = [sys.executable, "-m", "uvicorn", "backupplatform.asgi:application", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--lifespan", "off", "--log-level", log_level],
        cwd=ROOT,
        env={**platform_env(), **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                said = log.read_text()[-2000:] if log is not None else ""
                raise AssertionError(f"server exited: {said}") from None
            time.sleep(0.1)
    stop(proc)
    raise AssertionError("server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def start_runner(port: int, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    """``make run``'s runner (server, worker, beat) on ``port``, one worker process, its output
    in ``log``; ``extra`` is added to its arguments."""
    argv = [sys.executable, "-m", "backupplatform.runner", "run", "--port", str(port)]
    argv += ["--jobs-port", str(free_port()), "--concurrency", "1", *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
