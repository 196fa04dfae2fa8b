"""``make run`` supervises its children: one that dies is started again (with a backoff while
it keeps dying at once); the others are left alone."""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import psutil
import pytest

from backupplatform.runner import Child, Supervisor
from tests.support.live_asgi import start_runner

from .conftest import free_port, wait_for

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
CRASHER = [sys.executable, "-c", "raise SystemExit(3)"]


@pytest.fixture
def supervise():
    made: list[Supervisor] = []

    def make(*children: Child, **options) -> Supervisor:
        supervisor = Supervisor(list(children), logger=lambda message: None, **options)
        made.append(supervisor)
        supervisor.start()
        return supervisor

    yield make
    for supervisor in made:
        supervisor.stop(timeout=5)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_child_is_restarted_and_the_others_keep_running(supervise):
    supervisor = supervise(
        Child("uvicorn", SLEEPER), Child("worker", SLEEPER), Child("beat", SLEEPER), min_backoff=0.05
    )
    pids = {c.name: c.pid for c in supervisor.children}
    os.kill(pids["worker"], signal.SIGKILL)

    def restarted() -> bool:
        supervisor.poll()
        worker = supervisor.child("worker")
        return worker.pid not in (None, pids["worker"]) and _alive(worker.pid)

    wait_for(restarted, timeout=30, what="the worker started again")
    assert supervisor.child("worker").restarts == 1
    assert {c.name: c.pid for c in supervisor.children if c.name != "worker"} == {
        "uvicorn": pids["uvicorn"],
        "beat": pids["beat"],
    }
    assert all(_alive(c.pid) for c in supervisor.children)

    supervisor.stop(timeout=5)
    assert not any(_alive(c.pid) for c in supervisor.children)


def test_a_child_that_keeps_dying_is_restarted_with_a_growing_backoff(supervise):
    supervisor = supervise(Child("worker", CRASHER), Child("beat", SLEEPER), min_backoff=0.01, max_backoff=0.08)
    worker = supervisor.child("worker")

    def five_restarts() -> bool:
        supervisor.poll()
        return worker.restarts >= 5

    wait_for(five_restarts, timeout=30, what="five restarts")
    assert worker.delays[:5] == [0.01, 0.02, 0.04, 0.08, 0.08]
    assert supervisor.child("beat").restarts == 0


def test_a_child_that_ran_for_a_while_comes_back_at_once(supervise):
    supervisor = supervise(Child("worker", CRASHER), min_backoff=0.01, max_backoff=0.08, stable_after=0)
    worker = supervisor.child("worker")

    def three_restarts() -> bool:
        supervisor.poll()
        return worker.restarts >= 3

    wait_for(three_restarts, timeout=30, what="three restarts")
    assert set(worker.delays) == {0.01}


@pytest.mark.slow
def test_make_run_starts_its_killed_worker_again(tmp_path, redis_server):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        REDIS_URL=redis_server.url,
        BACKUP_LOCAL_ROOT=str(tmp_path / "backups"),
        PLATFORM_VAR_DIR=str(tmp_path / "var"),
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "run.log"
    runner = start_runner(port, env, log)
    try:

        def children() -> dict[str, int]:
            found = {}
            for child in psutil.Process(runner.pid).children():
                with contextlib.suppress(psutil.NoSuchProcess):
                    line = " ".join(child.cmdline())
                    for name, mark in (("web", " backupplatform.serve"), ("worker", " worker"), ("beat", " beat")):
                        if mark in line and child.status() != psutil.STATUS_ZOMBIE:
                            found[name] = child.pid
            return found

        first = wait_for(lambda: len(children()) == 3 and children(), timeout=240, what="make run serving")
        os.kill(first["worker"], signal.SIGKILL)
        again = wait_for(
            lambda: children().get("worker") not in (None, first["worker"]) and children(),
            timeout=60,
            what="the worker started again",
        )
        assert again["web"] == first["web"] and again["beat"] == first["beat"]
        assert runner.poll() is None
        assert "worker exited (signal SIGKILL)" in log.read_text()
    finally:
        runner.terminate()
        try:
            assert runner.wait(60) == 0, log.read_text()[-3000:]
        finally:
            if runner.poll() is None:
                runner.kill()
