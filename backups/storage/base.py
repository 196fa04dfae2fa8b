"""The storage backend interface shared by every storage type.

A backend is built from plain dictionaries (``configuration`` and
``credentials``, as stored on the ``Storage`` model) by
:func:`backups.storage.open_backend`. Object names are relative,
``/``-separated paths under the storage root (the local or SFTP directory, or
the bucket plus ``path_prefix``).

Writes are streaming and atomic: ``open_writer()`` returns a writer whose data
becomes visible only on ``commit()``; an exception inside the ``with`` block, an
explicit ``abort()``, or leaving the block without ``commit()`` discards it.
Reads are streaming too: ``open_reader()`` returns a binary file-like object
and never loads the whole object in memory.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

from .errors import (
    InvalidObjectName,
    StorageAuthError,
    StorageError,
    StorageNotFound,
    StorageUnavailable,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Size of the object :meth:`StorageBackend.probe` writes and reads back.
PROBE_SIZE = 4096
#: Temporary objects (in-flight writes) end with this suffix; listings hide them.
PARTIAL_SUFFIX = ".part"


def clean_name(name: str) -> str:
    """Validate an object name and return it unchanged.

    Names are relative and ``/``-separated; an absolute name, an empty segment,
    ``.``/``..`` segments, backslashes and NUL bytes are refused so that no name
    can escape the storage root.
    """
    if not isinstance(name, str) or not name:
        raise InvalidObjectName("Object name must be a non-empty string")
    if "\x00" in name or "\\" in name:
        raise InvalidObjectName(f"Object name {name!r} contains invalid characters")
    if name.startswith("/"):
        raise InvalidObjectName(f"Object name {name!r} must be relative")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidObjectName(f"Object name {name!r} must not contain empty, '.' or '..' parts")
    return name


def clean_prefix(prefix: str) -> str:
    """Validate a listing prefix: like :func:`clean_name` but may be empty or end in ``/``."""
    if prefix in ("", None):
        return ""
    body = prefix[:-1] if prefix.endswith("/") else prefix
    clean_name(body)
    return prefix


def is_partial(name: str) -> bool:
    """True for the temporary names writers use before ``commit()``."""
    base = name.rsplit("/", 1)[-1]
    return base.startswith(".") and base.endswith(PARTIAL_SUFFIX)


def partial_name(name: str) -> str:
    """A unique temporary sibling of ``name`` (same directory, hidden, ``.part``)."""
    head, _, base = name.rpartition("/")
    tmp = f".{base}.{secrets.token_hex(6)}{PARTIAL_SUFFIX}"
    return f"{head}/{tmp}" if head else tmp


@dataclass(frozen=True)
class StoredObject:
    """One object of a listing: its name relative to the storage root."""

    name: str
    size: int
    modified: datetime | None = None


@dataclass(frozen=True)
class ProbeStep:
    """One timed step of a probe (``connect``, ``write``, ``read``, ``delete``)."""

    name: str
    ok: bool
    duration_ms: int
    error: str | None = None


@dataclass(frozen=True)
class ProbeResult:
    """What :meth:`StorageBackend.probe` found.

    ``error_kind`` is ``None`` on success, else one of ``unavailable``,
    ``auth_failed``, ``not_found``, ``mismatch`` (read back different bytes) or
    ``error``.
    """

    ok: bool
    message: str
    latency_ms: int
    steps: tuple[ProbeStep, ...] = field(default_factory=tuple)
    error_kind: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (for API responses and audit details)."""
        data = asdict(self)
        data["steps"] = [asdict(step) for step in self.steps]
        return data


class StorageWriter(ABC):
    """A streaming, atomic writer. Use as a context manager.

    ``write()`` any number of times, then ``commit()`` to make the object
    visible under its final name in one step. Leaving the ``with`` block with an
    exception or without ``commit()`` aborts: nothing is left behind.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.bytes_written = 0
        self._state = "open"  # open -> committed | aborted

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append ``data``; returns the number of bytes taken."""
        if self._state != "open":
            raise StorageError(f"Writer for {self.name!r} is already {self._state}")
        if not data:
            return 0
        try:
            self._write(data)
        except BaseException:
            self.abort()
            raise
        self.bytes_written += len(data)
        return len(data)

    def commit(self) -> None:
        """Publish the object under its final name (atomically)."""
        if self._state == "committed":
            return
        if self._state != "open":
            raise StorageError(f"Writer for {self.name!r} is already {self._state}")
        try:
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        logger.debug("Committed %s (%d bytes)", self.name, self.bytes_written)

    def abort(self) -> None:
        """Discard everything written so far. Safe to call more than once."""
        if self._state != "open":
            return
        self._state = "aborted"
        try:
            self._abort()
        except Exception:
            # Cleanup must not hide the error that made us abort.
            logger.warning("Cleanup after aborting %s failed", self.name, exc_info=True)

    def __enter__(self) -> StorageWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "open":
            if exc_type is None:
                logger.warning("Writer for %s closed without commit(): aborted", self.name)
            self.abort()

    @abstractmethod
    def _write(self, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...


class StorageBackend(ABC):
    """One storage location. Subclasses implement the transport.

    Backends may hold a connection (SFTP); call :meth:`close` or use the backend
    as a context manager. An instance is not thread-safe: open one per task.
    Every public method raises only :class:`~backups.storage.errors.StorageError`
    subclasses for storage-side failures.
    """

    type: str = ""

    #: Human description used in messages (``s3://bucket/prefix``); no secrets.
    location: str = ""

    def __enter__(self) -> StorageBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections. The backend reconnects if used again."""

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Check that the storage is reachable and exists (used by :meth:`probe`)."""

    @abstractmethod
    def open_writer(self, name: str) -> StorageWriter:
        """Start a streaming, atomic write of ``name``."""

    @abstractmethod
    def open_reader(self, name: str) -> BinaryIO:
        """Open ``name`` for streaming reads; raises ``StorageNotFound``."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Delete ``name``; an object that is already gone is not an error."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """True if ``name`` exists."""

    @abstractmethod
    def size(self, name: str) -> int:
        """Size of ``name`` in bytes; raises ``StorageNotFound``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[StoredObject]:
        """Objects whose names start with ``prefix`` (recursive), ordered by name."""

    def discard_partials(self, name: str) -> int:
        """Remove what an interrupted writer of ``name`` left (temp files, open multipart
        uploads): the reaper calls this after a worker died. Returns how many were removed."""
        return 0

    def sweep_abandoned(self, *, prefixes: list[str], older_than: timedelta) -> int:
        """Remove incomplete uploads (multipart uploads, uncommitted blocks) under ``prefixes``
        started more than ``older_than`` ago; returns how many. Types whose partial writes are
        plain temporary files (local, SFTP) have nothing here: ``discard_partials`` covers them."""
        return 0

    def free_space(self) -> int | None:
        """Free bytes at the storage root, or ``None`` where it is not knowable."""
        return None

    def presigned_url(self, name: str, expires_in: int = 3600) -> str | None:
        """A time-limited download URL, or ``None`` for types without one."""
        clean_name(name)
        return None

    def write_bytes(self, name: str, data: bytes) -> None:
        """Convenience: write a small object in one go."""
        with self.open_writer(name) as writer:
            writer.write(data)
            writer.commit()

    def read_bytes(self, name: str) -> bytes:
        """Convenience: read a small object in one go (not for artifacts)."""
        with self.open_reader(name) as reader:
            return reader.read()

    def probe(self) -> ProbeResult:
        """A real round trip: connect, write a random object, read it back, delete it.

        Never raises for storage failures: the result says what failed, where,
        and how long each step took (api-layer.md, "Test Storage Connection").
        """
        steps: list[ProbeStep] = []
        payload = os.urandom(PROBE_SIZE)
        name = f".probe-{secrets.token_hex(8)}"
        started = time.monotonic()
        written = False

        def step(step_name: str, func: Callable[[], T]) -> T:
            t0 = time.monotonic()
            try:
                result = func()
            except Exception as exc:
                steps.append(ProbeStep(step_name, False, _ms(t0), _describe(exc)))
                raise
            steps.append(ProbeStep(step_name, True, _ms(t0)))
            return result

        try:
            step("connect", self.connect)
            step("write", lambda: self.write_bytes(name, payload))
            written = True
            data = step("read", lambda: self.read_bytes(name))
            if data != payload:
                self._probe_cleanup(name)
                return ProbeResult(
                    ok=False,
                    message=f"Read back {len(data)} bytes that differ from the {len(payload)} "
                    f"bytes written to {self.location}",
                    latency_ms=_ms(started),
                    steps=tuple(steps),
                    error_kind="mismatch",
                )
            step("delete", lambda: self.delete(name))
            written = False
            if self.exists(name):
                raise StorageError(f"Probe object still exists after delete on {self.location}")
        except Exception as exc:
            if written:
                self._probe_cleanup(name)
            failed = steps[-1].name if steps and not steps[-1].ok else "verify"
            message = f"{failed} failed: {_describe(exc)}"
            # Storage failures are expected outcomes; anything else may be a bug: keep its trace.
            logger.log(
                logging.INFO if isinstance(exc, StorageError) else logging.WARNING,
                "Storage probe of %s failed: %s",
                self.location,
                message,
                exc_info=not isinstance(exc, StorageError),
            )
            return ProbeResult(
                ok=False,
                message=message,
                latency_ms=_ms(started),
                steps=tuple(steps),
                error_kind=_kind(exc),
            )
        finally:
            self.close()
        return ProbeResult(
            ok=True,
            message=f"Wrote, read back and deleted {PROBE_SIZE} bytes on {self.location}",
            latency_ms=_ms(started),
            steps=tuple(steps),
        )

    def _probe_cleanup(self, name: str) -> None:
        try:
            self.delete(name)
        except Exception:
            logger.warning("Could not delete probe object %s on %s", name, self.location)


class StreamReader(io.RawIOBase):
    """Adapts a ``read(n)``-only stream (boto3 body, SFTP file) to ``io.RawIOBase``.

    Wrapped in ``io.BufferedReader`` it gives callers a normal binary file.
    ``on_close`` releases the underlying resource.
    """

    def __init__(
        self,
        read: Callable[[int], bytes],
        on_close: Callable[[], None] | None = None,
        translate: Callable[[Exception], Exception] | None = None,
    ) -> None:
        super().__init__()
        self._read = read
        self._on_close = on_close
        self._translate = translate

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._read(len(view))
        except StorageError:
            raise
        except Exception as exc:
            if self._translate is None:
                raise
            raise self._translate(exc) from exc
        n = len(data)
        view[:n] = data
        return n

    def close(self) -> None:
        if not self.closed and self._on_close is not None:
            try:
                self._on_close()
            except Exception:
                logger.debug("Closing a reader failed", exc_info=True)
        super().close()


def buffered(raw: io.RawIOBase, buffer_size: int = 1024 * 1024) -> BinaryIO:
    """Wrap a raw stream in a buffered binary reader."""
    return io.BufferedReader(raw, buffer_size)  # type: ignore[return-value]


def iter_chunks(reader: BinaryIO, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """Yield ``reader`` in chunks until EOF."""
    while chunk := reader.read(chunk_size):
        yield chunk


def _ms(since: float) -> int:
    return round((time.monotonic() - since) * 1000)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, StorageError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _kind(exc: BaseException) -> str:
    if isinstance(exc, StorageUnavailable):
        return "unavailable"
    if isinstance(exc, StorageAuthError):
        return "auth_failed"
    if isinstance(exc, StorageNotFound):
        return "not_found"
    return "error"
