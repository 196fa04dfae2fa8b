"""What every engine shares: connection parameters, errors, and subprocess-backed streams.

Engines are transport only (no Django ORM): the service layer passes a
:class:`ConnectionParams` built from a ``Server``'s decrypted credentials.

A **source** (:class:`SourceStream`) is a readable of the backup bytes plus the
facts the manifest records (``info``). Read it to EOF (e.g. through
``backups.pipeline.backup_stream``), then call ``finish()``: only then is the
dump known to be complete (a tool can fail after writing part of its output).
``kill()`` stops it (cancellation); leaving the ``with`` block without
``finish()`` kills it too, so no process outlives its stream.

A **sink** (:class:`RestoreSink`) takes the restored bytes with ``write()``;
``finish()`` completes the restore (and raises :class:`EngineError` if it
failed), ``abort()`` rolls back what can be rolled back (e.g. drops a database
the sink created). Leaving the ``with`` block without ``finish()`` aborts.

Secrets never reach a command line (``ps`` shows argv to every user): PostgreSQL
tools get ``PGPASSWORD`` in their environment, MySQL tools a 0600 defaults file.
Error messages carry the tail of the tool's stderr with the password scrubbed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import IO, Any, Protocol, runtime_checkable

logger = logging.getLogger(__name__)

POSTGRES_TYPES = frozenset({"postgresql", "postgres"})
MYSQL_TYPES = frozenset({"mysql", "mariadb"})

#: Restore strategies of database sinks (see postgres.py / mysql.py for the details).
CREATE_NEW = "create_new"
OVERWRITE = "overwrite"
STRATEGIES = (CREATE_NEW, OVERWRITE)

READ_SIZE = 1 << 20
PIPE_SIZE = 1 << 20
STDERR_TAIL = 2000


class EngineError(Exception):
    """A dump, restore or engine query failed; ``str()`` is safe to show (no secrets)."""

    def __init__(self, message: str, *, code: str = "engine_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class ConnectionParams:
    """Where a database server is and how to log in. The password never appears in repr/str."""

    type: str
    host: str
    port: int
    username: str
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    connect_timeout: int = 10

    def with_database(self, database: str | None) -> ConnectionParams:
        return replace(self, database=database)

    @property
    def is_postgres(self) -> bool:
        return self.type.lower() in POSTGRES_TYPES

    @property
    def is_mysql(self) -> bool:
        return self.type.lower() in MYSQL_TYPES


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every secret (of 3+ characters) in ``text`` by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise EngineError(
            f"Unknown restore strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}",
            code="invalid_strategy",
        )
    return strategy


@runtime_checkable
class SourceStream(Protocol):
    info: dict[str, Any]

    def read(self, size: int = ..., /) -> bytes: ...

    def finish(self) -> dict[str, Any]: ...

    def kill(self) -> None: ...

    def __enter__(self) -> SourceStream: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class RestoreSink(Protocol):
    def write(self, data: bytes, /) -> Any: ...

    def finish(self) -> dict[str, Any]: ...

    def abort(self) -> None: ...

    def __enter__(self) -> RestoreSink: ...

    def __exit__(self, *exc: object) -> None: ...


class StreamBase:
    """Context-manager behaviour shared by sources: kill unless finished."""

    _done = False

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.kill()

    def kill(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class SinkBase:
    """Context-manager behaviour shared by sinks: abort unless finished."""

    _done = False

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self.abort()

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# --------------------------------------------------------------------------- helpers


def grow_pipe(fileobj: IO[bytes] | None, size: int = PIPE_SIZE) -> None:
    """Ask Linux for a bigger pipe buffer (fewer context switches); ignored if refused."""
    if fileobj is None or not hasattr(fcntl, "F_SETPIPE_SZ"):
        return
    with contextlib.suppress(OSError):
        fcntl.fcntl(fileobj.fileno(), fcntl.F_SETPIPE_SZ, size)


def tool_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a client tool: ours minus any inherited credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "MYSQL")) and k not in {"LD_PRELOAD"}}
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


def tail(fileobj: IO[bytes] | None, secrets: Iterable[str | None], limit: int = STDERR_TAIL) -> str:
    if fileobj is None:
        return ""
    try:
        fileobj.flush()
        size = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(max(0, size - limit))
        text = fileobj.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""
    return scrub(text.strip(), secrets)


_TOOL_VERSIONS: dict[tuple[str, ...], tuple[tuple[int, int, int], str]] = {}


def tool_version(argv: list[str]) -> str:
    """First line of ``<tool> --version`` ("pg_dump (PostgreSQL) 15.2"), or "" if unavailable.

    Remembered per executable while its file stays the same (inode, size, mtime), so each
    backup and restore does not start one more process; an upgraded tool is asked again.
    """
    path = shutil.which(argv[0], path=tool_env().get("PATH"))
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    identity = (st.st_ino, st.st_size, st.st_mtime_ns) if st is not None else None
    known = _TOOL_VERSIONS.get(tuple(argv))
    if identity is not None and known is not None and known[0] == identity:
        return known[1]
    try:
        out = subprocess.run(argv, capture_output=True, timeout=10, check=False, env=tool_env()).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    version = out.decode("utf-8", "replace").strip().splitlines()[0] if out.strip() else ""
    if identity is not None and version:
        _TOOL_VERSIONS[tuple(argv)] = (identity, version)
    return version


def describe_exit(rc: int) -> str:
    """ "exit code 1", or "killed by SIGPIPE (output not read to the end)" for a negative code."""
    if rc >= 0:
        return f"exit code {rc}"
    try:
        name = signal.Signals(-rc).name
    except ValueError:
        name = f"signal {-rc}"
    if -rc == signal.SIGPIPE:
        return f"killed by {name}: its output was not read to the end"
    return f"killed by {name}"


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:  # pragma: no cover - every Linux libc has prctl
        return None
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Resolved once, here: the function below runs between fork and exec, where loading a
# library (or anything else that may take a lock another thread held) could deadlock.
_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the tool die (SIGKILL) when the process that started it does.

    The tools run in their own session (``start_new_session``: Ctrl-C in a terminal reaches
    the platform, which cancels cleanly, and ``kill()`` reaches the tool's whole group), so
    nothing else would stop a ``pg_dump`` whose worker was killed: it would keep reading the
    source database and writing into a pipe nobody reads. Linux only (elsewhere the reaper
    still fails the operation); the signal fires when the *thread* that started the tool
    ends, and every engine waits for its tools on the thread that started them.
    """
    if _PRCTL is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the line above: nobody will signal
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _killpg(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


class ProcessSource(StreamBase):
    """A source reading a tool's stdout; stderr goes to a temp file (bounded by what we read back)."""

    def __init__(
        self,
        argv: list[str],
        *,
        tool: str,
        info: dict[str, Any],
        env: dict[str, str],
        secrets: Iterable[str | None] = (),
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self.info = info
        self.tool = tool
        self._secrets = list(secrets)
        self._cleanup = cleanup
        self._result: dict[str, Any] = {}
        self._bytes = 0
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish/kill
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                bufsize=0,
                start_new_session=True,  # its own process group: kill() reaches children too
                preexec_fn=die_with_parent(),  # dies with its worker (see die_with_parent)
            )
        except OSError as exc:
            self._stderr.close()
            self._run_cleanup()
            raise EngineError(f"{tool} could not be started: {exc}", code="tool_missing") from None
        grow_pipe(self._proc.stdout)
        logger.debug("%s started pid=%s", tool, self._proc.pid)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def bytes_read(self) -> int:
        return self._bytes

    def read(self, size: int = READ_SIZE, /) -> bytes:
        assert self._proc.stdout is not None
        if size is None or size < 0:
            size = READ_SIZE
        data = self._proc.stdout.read(size) or b""
        self._bytes += len(data)
        return data

    #: The pipeline fills whole blocks with ``readinto`` (few large blocks, no extra copy).
    fills_blocks = True

    def readinto(self, buffer: Any, /) -> int:
        """Read into ``buffer`` (what the pipeline uses to fill whole blocks without a copy)."""
        assert self._proc.stdout is not None
        count = self._proc.stdout.readinto(buffer) or 0
        self._bytes += count
        return count

    def finish(self) -> dict[str, Any]:
        if self._done:
            return self._result
        self._done = True
        try:
            if self._proc.stdout is not None:
                # Closing an unread pipe makes the tool fail with SIGPIPE: a dump nobody read
                # to the end is not a complete dump.
                self._proc.stdout.close()
            rc = self._proc.wait()
            if rc != 0:
                detail = tail(self._stderr, self._secrets)
                raise EngineError(
                    f"{self.tool} failed ({describe_exit(rc)})" + (f": {detail}" if detail else ""),
                    code="dump_failed",
                )
            self._result = {"bytes": self._bytes}
            return self._result
        finally:
            self._stderr.close()
            self._run_cleanup()

    def kill(self) -> None:
        was_done, self._done = self._done, True
        _killpg(self._proc)
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdout is not None:
                self._proc.stdout.close()
        self._proc.wait()
        if not was_done:
            with contextlib.suppress(OSError):
                self._stderr.close()
            self._run_cleanup()

    def _run_cleanup(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()


class ProcessSink(SinkBase):
    """A sink writing into a tool's stdin.

    ``on_success()`` runs after the tool exited 0 (its dict is merged into
    ``finish()``'s result); ``on_failure()`` runs after a failure or ``abort()``
    (e.g. to drop a database the sink created). ``cleanup()`` runs in both cases.
    """

    def __init__(
        self,
        argv: list[str],
        *,
        tool: str,
        env: dict[str, str],
        secrets: Iterable[str | None] = (),
        result: dict[str, Any] | None = None,
        on_success: Callable[[], dict[str, Any] | None] | None = None,
        on_failure: Callable[[], None] | None = None,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self.tool = tool
        self._secrets = list(secrets)
        self._result = dict(result or {})
        self._on_success = on_success
        self._on_failure = on_failure
        self._cleanup = cleanup
        self._bytes = 0
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in finish/kill
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # dies with its worker (see die_with_parent)
            )
        except OSError as exc:
            self._stderr.close()
            self._fail()
            raise EngineError(f"{tool} could not be started: {exc}", code="tool_missing") from None
        grow_pipe(self._proc.stdin)

    def write(self, data: bytes, /) -> int:
        if self._done:
            raise EngineError(f"{self.tool}: write after the restore ended", code="restore_failed")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(data)
        except (BrokenPipeError, ValueError):
            self._raise_failed()
        self._bytes += len(data)
        return len(data)

    def finish(self) -> dict[str, Any]:
        if self._done:
            return self._result
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            self._raise_failed()
        rc = self._proc.wait()
        if rc != 0:
            self._raise_failed()
        self._done = True
        try:
            extra = self._on_success() if self._on_success else None
        except BaseException:
            self._fail()
            raise
        finally:
            self._stderr.close()
            self._run_cleanup()
        self._result.update(extra or {})
        self._result["bytes"] = self._bytes
        return self._result

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        _killpg(self._proc)
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        self._proc.wait()
        self._stderr.close()
        self._fail()

    def _raise_failed(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        rc = self._proc.wait()
        detail = tail(self._stderr, self._secrets)
        self._done = True
        self._stderr.close()
        self._fail()
        raise EngineError(
            f"{self.tool} failed ({describe_exit(rc)})" + (f": {detail}" if detail else ""),
            code="restore_failed",
        )

    def _fail(self) -> None:
        try:
            if self._on_failure is not None:
                self._on_failure()
        except Exception:
            logger.exception("%s: cleanup after a failed restore failed", self.tool)
        finally:
            self._run_cleanup()

    def _run_cleanup(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()


# --------------------------------------------------------------------------- readers


class IterReader:
    """Turns an iterable of byte chunks (e.g. ``restore_stream(...)``) into ``read(n)``."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it: Iterator[bytes] = iter(chunks)
        self._buf = bytearray()
        self._eof = False

    def read(self, size: int = -1, /) -> bytes:
        if size is None or size < 0:
            for chunk in self._it:
                self._buf += chunk
            out = bytes(self._buf)
            self._buf.clear()
            return out
        while len(self._buf) < size and not self._eof:
            try:
                self._buf += next(self._it)
            except StopIteration:
                self._eof = True
        out = bytes(self._buf[:size])
        del self._buf[:size]
        return out


def as_readable(stream: Any) -> Any:
    """A ``read(n)`` object from a readable, an iterable of bytes, or bytes."""
    if isinstance(stream, bytes | bytearray | memoryview):
        import io

        return io.BytesIO(bytes(stream))
    if callable(getattr(stream, "read", None)):
        return stream
    return IterReader(stream)


def copy_into(readable: Any, sink: RestoreSink, size: int = READ_SIZE) -> int:
    """Copy a readable (or iterable of bytes) into a sink; returns the byte count."""
    reader = as_readable(readable)
    total = 0
    while True:
        block = reader.read(size)
        if not block:
            return total
        sink.write(block)
        total += len(block)
