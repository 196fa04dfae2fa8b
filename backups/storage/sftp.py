"""SFTP storage on paramiko.

django-storages' ``SFTPStorage`` buffers a whole file in memory before it
writes, which an artifact of many GiB cannot afford; this backend streams with
paramiko's ``SFTPClient.open(path, "wb")`` (pipelined) to a hidden temporary
name, then renames it into place (``posix-rename@openssh.com`` where the server
has it, so the switch is atomic).

One SSH connection per backend instance, opened lazily and reused; ``close()``
ends it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import posixpath
import stat
import struct
from datetime import UTC, datetime
from typing import Any, BinaryIO

import paramiko
from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

from backups.connectivity import ConnectionFailed, open_ssh

from .base import (
    StorageBackend,
    StorageWriter,
    StoredObject,
    StreamReader,
    buffered,
    clean_name,
    clean_prefix,
    is_partial,
    partial_name,
)
from .errors import StorageAuthError, StorageError, StorageNotFound, StorageUnavailable
from .retry import RetryPolicy, default_policy

logger = logging.getLogger(__name__)

#: Read size per SFTP request (paramiko's own maximum is 32 KiB per packet).
READ_CHUNK = 256 * 1024
#: Bytes a writer keeps until the server confirms them (what it resends after a drop).
CHECKPOINT = 8 * 1024 * 1024


def translate_sftp_error(exc: BaseException, what: str) -> StorageError:
    """Map an SFTP/SSH/socket error to a storage error about ``what``."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) == errno.ENOENT:
        return StorageNotFound(f"{what} does not exist")
    if isinstance(exc, PermissionError) or getattr(exc, "errno", None) == errno.EACCES:
        return StorageAuthError(f"Permission denied: {what}")
    if isinstance(exc, paramiko.SSHException | EOFError | ConnectionError | TimeoutError):
        return StorageUnavailable(f"SFTP connection lost while accessing {what}")
    if isinstance(exc, OSError):
        return StorageError(f"SFTP error on {what}: {exc.strerror or exc}")
    return StorageError(f"SFTP error on {what}: {type(exc).__name__}")


class SFTPWriter(StorageWriter):
    """Streams to ``.<name>.<random>.part`` in the target directory, renames on commit.

    Survives a dropped SSH connection: the bytes sent since the last checkpoint stay in
    memory (at most ``checkpoint`` bytes); every ``checkpoint`` bytes an ``FSTAT`` (answered
    only after the server has handled every write before it) confirms the temporary file's
    size. After a drop the writer reconnects (retry policy: backoff with jitter), cuts the
    temporary file back to the confirmed size and sends the unconfirmed bytes again.
    """

    def __init__(self, backend: SFTPBackend, name: str) -> None:
        super().__init__(name)
        self._backend = backend
        self._path = backend.path(name)
        self._tmp = backend.path(partial_name(name))
        self._file: paramiko.SFTPFile | None = None
        self._confirmed = 0
        self._pending = bytearray()
        self._broken = False
        self.reconnects = 0

        def open_attempt() -> None:
            self._broken = False  # nothing to resume yet: just open again
            self._run(self._open_new)

        self._backend.policy.call(open_attempt, what=self.name)
        self._broken = False

    # -- connection loss -------------------------------------------------------------------

    def _open_new(self) -> None:
        self._backend.makedirs(posixpath.dirname(self._path))
        self._file = self._backend.sftp().open(self._tmp, "wb")
        # Don't wait for each write's ack; checkpoints confirm what arrived.
        self._file.set_pipelined(True)

    def _resume(self) -> None:
        """Reconnect, cut the temp file back to what was confirmed, resend the rest."""
        with contextlib.suppress(Exception):
            if self._file is not None:
                self._file.close()
        self._file = None
        sftp = self._backend.sftp()
        handle = sftp.open(self._tmp, "r+b")
        size = handle.stat().st_size or 0
        if size < self._confirmed:
            handle.close()
            raise StorageError(
                f"The partial upload of {self.name} lost confirmed data ({size} < {self._confirmed} bytes)"
            )
        handle.truncate(self._confirmed)
        handle.seek(self._confirmed)
        handle.set_pipelined(True)
        self._file = handle
        if self._pending:
            handle.write(bytes(self._pending))
        self.reconnects += 1
        logger.info("Resumed %s at byte %d after a lost connection", self.name, self._confirmed)

    def _guard(self, op: Any, *, resend: bool) -> Any:
        """Run ``op``; on a lost connection, resume and run it again (retry policy).

        ``resend``: the operation's data is already in the pending bytes that a resume
        sends again, so after a resume there is nothing left to do.
        """

        def attempt() -> Any:
            if self._broken:
                self._run(self._resume)
                self._broken = False
                if resend:
                    return None
            return self._run(op)

        return self._backend.policy.call(attempt, what=self.name)

    def _run(self, op: Any) -> Any:
        try:
            return op()
        except StorageUnavailable:
            self._broken = True
            raise
        except StorageError:
            raise
        except (OSError, EOFError, paramiko.SSHException) as exc:
            error = translate_sftp_error(exc, self.name)
            if not isinstance(error, StorageUnavailable) and not self._backend.connected():
                error = StorageUnavailable(f"SFTP connection lost while writing {self.name}")
            if isinstance(error, StorageUnavailable):
                self._broken = True
            raise error from None

    # -- writing -----------------------------------------------------------------------------

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytes(data)
        self._pending += chunk
        self._guard(lambda: self._file.write(chunk), resend=True)
        if len(self._pending) >= self._backend.checkpoint:
            self._guard(self._checkpoint, resend=False)

    def _checkpoint(self) -> None:
        size = self._file.stat().st_size or 0
        # The FSTAT answer came after the answers to every write before it, which paramiko has
        # read and dropped on the way; forget them, or its pipelining would wait for them again.
        self._file._reqs.clear()
        expected = self._confirmed + len(self._pending)
        if size != expected:
            # A pipelined write failed on the server (disk full, quota): its error status
            # is not reported by paramiko, the size tells.
            raise StorageError(f"SFTP server stored {size} of {expected} bytes of {self.name} (disk full or quota?)")
        self._confirmed = expected
        self._pending.clear()

    def _commit(self) -> None:
        self._guard(self._checkpoint, resend=False)
        with contextlib.suppress(Exception):
            self._file.close()  # everything is confirmed; a failure here loses nothing
        self._guard(self._rename, resend=False)

    def _rename(self) -> None:
        sftp = self._backend.sftp()
        try:
            sftp.posix_rename(self._tmp, self._path)
        except FileNotFoundError:
            # A retry after a lost answer: the first rename may have happened.
            if self._backend.exists(self.name) and self._backend.size(self.name) == self.bytes_written:
                return
            raise
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.EACCES or not self._backend.connected():
                raise
            # Server without posix-rename: plain SFTP rename refuses to
            # overwrite, so remove first (a short non-atomic window).
            logger.info("posix-rename unsupported on %s; falling back", self._backend.location)
            with contextlib.suppress(FileNotFoundError):
                sftp.remove(self._path)
            sftp.rename(self._tmp, self._path)

    def _abort(self) -> None:
        self._pending = bytearray()
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()

        def remove() -> None:
            try:
                self._backend.sftp().remove(self._tmp)
            except FileNotFoundError:
                return
            except (OSError, EOFError, paramiko.SSHException) as exc:
                raise translate_sftp_error(exc, self.name) from None

        self._backend.policy.call(remove, what=f"{self.name} (remove partial)")


class SFTPBackend(StorageBackend):
    """Objects are files under ``configuration["path"]`` on an SFTP server."""

    type = "sftp"

    def __init__(
        self,
        configuration: dict[str, Any],
        credentials: dict[str, Any],
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        checkpoint: int = CHECKPOINT,
    ) -> None:
        self.policy = retry or default_policy()
        self.checkpoint = int(checkpoint)
        self.host: str = configuration["host"]
        self.port = int(configuration.get("port") or 22)
        self.root: str = posixpath.normpath(configuration["path"])
        self.username: str = configuration.get("username") or credentials.get("username") or ""
        self.host_key: str | None = configuration.get("host_key") or None
        self._password: str | None = credentials.get("password") or None
        self._private_key: str | None = credentials.get("private_key") or None
        self._passphrase: str | None = credentials.get("passphrase") or None
        self.timeout = float(configuration.get("timeout") or timeout)
        self.location = f"sftp://{self.username}@{self.host}:{self.port}{self.root}"
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None

    # -- connection ---------------------------------------------------------------

    def sftp(self) -> paramiko.SFTPClient:
        """The open SFTP session, connecting on first use (or after a drop)."""
        transport = self._client.get_transport() if self._client else None
        if self._sftp is not None and transport is not None and transport.is_active():
            return self._sftp
        self.close()
        try:
            self._client = open_ssh(
                host=self.host,
                port=self.port,
                username=self.username,
                password=self._password,
                private_key=self._private_key,
                passphrase=self._passphrase,
                host_key=self.host_key,
                timeout=self.timeout,
            )
            self._sftp = self._client.open_sftp()
        except ConnectionFailed as exc:
            self.close()
            if exc.kind == "auth_failed":
                raise StorageAuthError(exc.message) from None
            if exc.kind == "error":
                raise StorageError(exc.message) from None
            raise StorageUnavailable(exc.message) from None
        except (OSError, paramiko.SSHException) as exc:
            self.close()
            raise StorageUnavailable(f"Could not open an SFTP session on {self.host}:{self.port}: {exc}") from None
        self._sftp.get_channel().settimeout(self.timeout)
        return self._sftp

    def connected(self) -> bool:
        """True while the SSH connection is up."""
        transport = self._client.get_transport() if self._client else None
        return transport is not None and transport.is_active()

    def close(self) -> None:
        if self._sftp is not None:
            try:
                self._sftp.close()
            except Exception:
                logger.debug("Closing SFTP session failed", exc_info=True)
        if self._client is not None:
            self._client.close()
        self._sftp = None
        self._client = None

    def connect(self) -> None:
        sftp = self.sftp()
        try:
            attrs = sftp.stat(self.root)
        except FileNotFoundError:
            try:
                self.makedirs(self.root)
            except (OSError, paramiko.SSHException) as exc:
                raise translate_sftp_error(exc, self.root) from None
            return
        except (OSError, paramiko.SSHException) as exc:
            raise translate_sftp_error(exc, self.root) from None
        if not stat.S_ISDIR(attrs.st_mode or 0):
            raise StorageError(f"{self.root} on {self.host} is not a directory")

    # -- paths ----------------------------------------------------------------------

    def path(self, name: str) -> str:
        """Absolute server path of an object name."""
        return posixpath.join(self.root, clean_name(name))

    def makedirs(self, directory: str) -> None:
        """``mkdir -p`` over SFTP."""
        sftp = self.sftp()
        missing: list[str] = []
        current = directory
        while current not in ("", "/"):
            try:
                sftp.stat(current)
                break
            except FileNotFoundError:
                missing.append(current)
                current = posixpath.dirname(current)
        for path in reversed(missing):
            try:
                sftp.mkdir(path)
            except OSError:
                # Created concurrently by another writer?
                if not stat.S_ISDIR(sftp.stat(path).st_mode or 0):
                    raise

    # -- interface --------------------------------------------------------------------

    def open_writer(self, name: str) -> SFTPWriter:
        return SFTPWriter(self, name)

    def open_reader(self, name: str) -> BinaryIO:
        path = self.path(name)
        try:
            handle = self.sftp().open(path, "rb")
        except (OSError, paramiko.SSHException) as exc:
            raise translate_sftp_error(exc, name) from None
        return buffered(
            StreamReader(handle.read, handle.close, lambda exc: translate_sftp_error(exc, name)),
            buffer_size=READ_CHUNK,
        )

    def delete(self, name: str) -> None:
        try:
            self.sftp().remove(self.path(name))
        except FileNotFoundError:
            return
        except (OSError, paramiko.SSHException) as exc:
            raise translate_sftp_error(exc, name) from None

    def discard_partials(self, name: str) -> int:
        full = self.path(name)
        directory, _, base = full.rpartition("/")
        removed = 0
        try:
            entries = self.sftp().listdir(directory or "/")
        except FileNotFoundError:
            return 0
        except (OSError, paramiko.SSHException) as exc:
            raise translate_sftp_error(exc, name) from None
        for entry in entries:
            if entry.startswith(f".{base}.") and is_partial(entry):
                with contextlib.suppress(FileNotFoundError):
                    self.sftp().remove(f"{directory}/{entry}")
                    removed += 1
        return removed

    def exists(self, name: str) -> bool:
        try:
            return stat.S_ISREG(self.sftp().stat(self.path(name)).st_mode or 0)
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException) as exc:
            raise translate_sftp_error(exc, name) from None

    def size(self, name: str) -> int:
        try:
            attrs = self.sftp().stat(self.path(name))
        except (OSError, paramiko.SSHException) as exc:
            raise translate_sftp_error(exc, name) from None
        if not stat.S_ISREG(attrs.st_mode or 0):
            raise StorageNotFound(f"{name} does not exist")
        return int(attrs.st_size or 0)

    def list(self, prefix: str = "") -> list[StoredObject]:
        prefix = clean_prefix(prefix)
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        sftp = self.sftp()
        found: list[StoredObject] = []
        pending = [head]
        while pending:
            rel_dir = pending.pop()
            directory = posixpath.join(self.root, rel_dir) if rel_dir else self.root
            try:
                entries = sftp.listdir_attr(directory)
            except FileNotFoundError:
                continue
            except (OSError, paramiko.SSHException) as exc:
                raise translate_sftp_error(exc, directory) from None
            for entry in entries:
                name = f"{rel_dir}/{entry.filename}" if rel_dir else entry.filename
                mode = entry.st_mode or 0
                if stat.S_ISDIR(mode):
                    if prefix.startswith(name + "/") or name.startswith(prefix):
                        pending.append(name)
                elif stat.S_ISREG(mode) and name.startswith(prefix) and not is_partial(name):
                    modified = datetime.fromtimestamp(entry.st_mtime, tz=UTC) if entry.st_mtime else None
                    found.append(StoredObject(name, int(entry.st_size or 0), modified))
        found.sort(key=lambda obj: obj.name)
        return found

    def free_space(self) -> int | None:
        """Free bytes via the ``statvfs@openssh.com`` extension, ``None`` if unsupported.

        paramiko has no public call for it, so we send the extended request
        ourselves (OpenSSH PROTOCOL, section 4.4).
        """
        sftp = self.sftp()
        path = self.root
        while True:
            try:
                kind, msg = sftp._request(CMD_EXTENDED, "statvfs@openssh.com", path)
                break
            except FileNotFoundError:
                if path == "/":
                    return None
                path = posixpath.dirname(path)  # root not created yet: ask its parent
            except (OSError, paramiko.SSHException):
                logger.debug("statvfs not supported by %s", self.location, exc_info=True)
                return None
        if kind != CMD_EXTENDED_REPLY:
            return None
        try:
            _bsize, frsize, _blocks, _bfree, bavail = struct.unpack(">5Q", msg.get_bytes(40))
        except struct.error:
            return None
        return int(frsize * bavail)
