"""Real Celery workers for tests, on this test's PostgreSQL database and this run's Redis,
and ``wait_for`` for what they do."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .live_asgi import ROOT, platform_env, stop


def start_celery_worker(
    name: str, *, env: dict[str, str] | None = None, log: Path | None = None, loglevel: str = "warning"
) -> subprocess.Popen:
    """``celery worker`` (solo pool, no mingle or gossip) named ``name-<pid>``; ``env`` is added
    to ``platform_env()`` (which skips the test on SQLite)."""
    output = log.open("w") if log is not None else None
    argv = [sys.executable, "-m", "celery", "-A", "backupplatform", "worker", "--pool=solo", "-l", loglevel]
    return subprocess.Popen(
        [*argv, "-n", f"{name}-{os.getpid()}@%h", "--without-mingle", "--without-gossip"],
        cwd=ROOT,
        env={**platform_env(), **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
    )


def purge_queues() -> None:
    """Drop messages left by earlier tests (their rows are gone). Call it before starting a
    worker, not from the worker, so nothing the test queues while the worker boots is lost."""
    from backupplatform.celery import app

    app.control.purge()


@pytest.fixture
def start_worker() -> Iterator[Callable[..., subprocess.Popen]]:
    """``start_worker(**env)``: a real worker (see ``start_celery_worker``), killed at the end."""
    procs: list[subprocess.Popen] = []

    def start(**env: str) -> subprocess.Popen:
        proc = start_celery_worker(f"test-worker-{len(procs)}", env=env)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> Any:
    """``predicate()``'s first true value, polled until ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not reached in {timeout:g}s: {what or predicate}")


__all__ = ["platform_env", "purge_queues", "start_celery_worker", "start_worker", "stop", "wait_for"]
