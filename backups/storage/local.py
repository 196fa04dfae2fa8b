"""Local filesystem storage: a directory on the worker's disk (or a mounted share).

Writes go to a hidden temporary file in the target's directory, are fsynced,
then ``os.replace``d into place, so a reader never sees a partial artifact and a
crash leaves only a ``.part`` file that listings ignore.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from backupplatform.fileio import write_in_slices

from .base import (
    PARTIAL_SUFFIX,
    StorageBackend,
    StorageWriter,
    StoredObject,
    clean_name,
    clean_prefix,
    is_partial,
)
from .errors import StorageAuthError, StorageError, StorageNotFound, StorageUnavailable

logger = logging.getLogger(__name__)


def translate_os_error(exc: OSError, what: str) -> StorageError:
    """Map an ``OSError`` to a storage error whose message names ``what``."""
    if isinstance(exc, FileNotFoundError):
        return StorageNotFound(f"{what} does not exist")
    if isinstance(exc, PermissionError):
        return StorageAuthError(f"Permission denied: {what}")
    if exc.errno == errno.ENOSPC:
        return StorageError(f"No space left on device for {what}")
    if exc.errno in (errno.EIO, errno.ESTALE, errno.ETIMEDOUT):
        return StorageUnavailable(f"I/O error on {what}: {exc.strerror}")
    return StorageError(f"Could not access {what}: {exc.strerror or exc}")


#: Bytes written between two writeback starts (``LocalWriter._start_writeback``).
WRITEBACK_EVERY = 64 << 20


class LocalWriter(StorageWriter):
    """Temp file in the destination directory, then an atomic ``os.replace``."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(name)
        self._path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=PARTIAL_SUFFIX)
        except OSError as exc:
            raise translate_os_error(exc, str(path.parent)) from None
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._written = self._flushed = 0

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            write_in_slices(self._file.write, data)
            self._written += len(data)
            if self._written - self._flushed >= WRITEBACK_EVERY:
                self._start_writeback()
        except OSError as exc:
            raise translate_os_error(exc, str(self._path)) from None

    def _start_writeback(self) -> None:
        """Have the kernel start writing what is written so far to disk, without waiting
        (``POSIX_FADV_DONTNEED`` starts the writeback of dirty pages, then drops the clean
        ones): the commit's fsync then finds little left to write (1.2 GB: 0.5 s -> 0.03 s),
        and a backup does not fill the page cache with an artifact nobody reads back."""
        self._file.flush()
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._file.fileno(), self._flushed, self._written - self._flushed, os.POSIX_FADV_DONTNEED)
        self._flushed = self._written

    def _commit(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self._tmp, self._path)
            _fsync_dir(self._path.parent)
        except OSError as exc:
            raise translate_os_error(exc, str(self._path)) from None

    def _abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalBackend(StorageBackend):
    """Objects are files under ``configuration["path"]`` (created on first write)."""

    type = "local"

    def __init__(self, configuration: dict[str, Any], credentials: dict[str, Any]) -> None:
        self.root = Path(configuration["path"])
        self.location = str(self.root)

    def _path(self, name: str) -> Path:
        return self.root / clean_name(name)

    def connect(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise translate_os_error(exc, str(self.root)) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageAuthError(f"Permission denied: {self.root} is not writable")

    def open_writer(self, name: str) -> LocalWriter:
        return LocalWriter(name, self._path(name))

    def open_reader(self, name: str) -> BinaryIO:
        path = self._path(name)
        try:
            return path.open("rb")
        except IsADirectoryError:
            raise StorageNotFound(f"{name} does not exist") from None
        except OSError as exc:
            raise translate_os_error(exc, name) from None

    def delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise translate_os_error(exc, name) from None

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def discard_partials(self, name: str) -> int:
        path = self._path(name)
        removed = 0
        if path.parent.is_dir():
            for leftover in path.parent.glob(f".{path.name}.*{PARTIAL_SUFFIX}"):
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    def size(self, name: str) -> int:
        path = self._path(name)
        try:
            st = path.stat()
        except OSError as exc:
            raise translate_os_error(exc, name) from None
        if not path.is_file():
            raise StorageNotFound(f"{name} does not exist")
        return st.st_size

    def list(self, prefix: str = "") -> list[StoredObject]:
        prefix = clean_prefix(prefix)
        # Walk only the directory the prefix points into, then filter by prefix.
        head = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / head if head else self.root
        found: list[StoredObject] = []
        if not start.is_dir():
            return found
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames.sort()
            for filename in filenames:
                full = Path(dirpath) / filename
                name = full.relative_to(self.root).as_posix()
                if not name.startswith(prefix) or is_partial(name):
                    continue
                try:
                    st = full.stat()
                except FileNotFoundError:
                    continue  # deleted while we walked
                modified = datetime.fromtimestamp(st.st_mtime, tz=UTC)
                found.append(StoredObject(name, st.st_size, modified))
        found.sort(key=lambda obj: obj.name)
        return found

    def free_space(self) -> int | None:
        path = self.root
        while not path.exists() and path != path.parent:
            path = path.parent  # root not created yet: ask the filesystem it will live on
        try:
            return shutil.disk_usage(path).free
        except OSError:
            logger.warning("Could not read free space of %s", self.root, exc_info=True)
            return None


def _fsync_dir(path: Path) -> None:
    """Make the rename durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
