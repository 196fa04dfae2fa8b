"""A restore sink that spools the stream to a file first (``pg_restore --jobs`` needs a
seekable dump), after checking the folder has room for it."""

from __future__ import annotations

import contextlib
import errno
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from backupplatform.fileio import write_in_slices

from .base import EngineError, SinkBase

logger = logging.getLogger(__name__)

#: Room kept free beyond the dump itself.
SPOOL_MARGIN = 64 << 20
#: Pieces (about 1 MiB each) waiting for the spool file's writer thread.
SPOOL_QUEUE = 8


def check_spool_space(
    folder: str,
    size: int | None,
    *,
    what: str = "A parallel restore",
    instead: str = "Restore without jobs (streamed, no temporary space)",
) -> None:
    """Refuse (``code="insufficient_space"``) when ``folder`` has less than ``size`` bytes plus a
    margin free; an unknown size is not checked (writing then fails cleanly if space runs out).
    ``what`` needs the room; ``instead`` is what works without it."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise EngineError(
            f"Temporary folder {folder} cannot be used: {exc.strerror or exc}", code="insufficient_space"
        ) from None
    if size and free < size + SPOOL_MARGIN:
        raise EngineError(
            f"{what} first writes the dump to {folder}: it needs {_mib(size + SPOOL_MARGIN)} "
            f"free there, {_mib(free)} is. {instead} or free some space.",
            code="insufficient_space",
        )


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"


class SpoolSink(SinkBase):
    """Writes the stream to a temporary file; ``finish()`` hands the file to the sink
    ``start(path)`` makes (e.g. ``pg_restore --jobs N path``), finishes it and deletes the
    file. ``abort()`` (or a failure while spooling) deletes the file and calls ``on_abort``.

    The file is written on a thread of its own, a few pieces behind: writing a dump to disk
    takes about as long as decrypting and decompressing it, and the two then overlap instead
    of adding up (1 GB: 3.7 s spooled one after the other)."""

    def __init__(
        self,
        start: Callable[[str], Any],
        *,
        spool_dir: str | None = None,
        on_abort: Callable[[], None] | None = None,
    ) -> None:
        self._start = start
        self._on_abort = on_abort
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finish/abort
            dir=spool_dir, prefix="bp-restore-", suffix=".spool"
        )
        self._pieces: queue.Queue[bytes | None] = queue.Queue(maxsize=SPOOL_QUEUE)
        self._failure: OSError | None = None
        self._writer = threading.Thread(target=self._write_pieces, name="restore-spool-writer", daemon=True)
        self._writer.start()

    @property
    def path(self) -> str:
        return self._file.name

    def _write_pieces(self) -> None:
        while (piece := self._pieces.get()) is not None:
            if self._failure is None:  # after a failure, only drain (the producer stops soon)
                try:
                    write_in_slices(self._file.write, piece)
                except OSError as exc:
                    self._failure = exc
        if self._failure is None:
            try:
                self._file.flush()
            except OSError as exc:
                self._failure = exc

    def _stop_writer(self) -> None:
        if self._writer.is_alive():
            self._pieces.put(None)
            self._writer.join()

    def _raise_failure(self) -> None:
        exc = self._failure
        self.abort()
        raise EngineError(
            f"Writing the dump to a temporary file failed: {exc.strerror or exc}",
            code="insufficient_space" if exc.errno == errno.ENOSPC else "restore_failed",
        ) from None

    def write(self, data: bytes, /) -> int:
        if self._done:
            raise EngineError("write after the restore ended", code="restore_failed")
        if self._failure is not None:
            self._raise_failure()
        self._pieces.put(data if isinstance(data, bytes) else bytes(data))  # a caller may reuse its buffer
        return len(data)

    def finish(self) -> dict[str, Any]:
        if self._done:
            raise EngineError("the restore already ended", code="restore_failed")
        self._stop_writer()
        if self._failure is not None:
            self._raise_failure()
        self._done = True
        try:
            sink = self._start(self._file.name)
            return sink.finish()
        finally:
            with contextlib.suppress(OSError):
                self._file.close()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._stop_writer()
        with contextlib.suppress(OSError):
            self._file.close()
        if self._on_abort is not None:
            try:
                self._on_abort()
            except Exception:
                logger.exception("cleanup after an aborted restore failed")
