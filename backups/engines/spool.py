"""A restore sink that spools the stream to a file first (``pg_restore --jobs`` needs a
seekable dump), after checking the folder has room for it."""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from .base import EngineError, SinkBase

logger = logging.getLogger(__name__)

#: Room kept free beyond the dump itself.
SPOOL_MARGIN = 64 << 20


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
    file. ``abort()`` (or a failure while spooling) deletes the file and calls ``on_abort``."""

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

    @property
    def path(self) -> str:
        return self._file.name

    def write(self, data: bytes, /) -> int:
        if self._done:
            raise EngineError("write after the restore ended", code="restore_failed")
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise EngineError(
                f"Writing the dump to a temporary file failed: {exc.strerror or exc}",
                code="insufficient_space" if exc.errno == errno.ENOSPC else "restore_failed",
            ) from None
        return len(data)

    def finish(self) -> dict[str, Any]:
        if self._done:
            raise EngineError("the restore already ended", code="restore_failed")
        try:
            self._file.flush()
        except OSError as exc:
            self.abort()
            raise EngineError(
                f"Writing the dump to a temporary file failed: {exc.strerror or exc}",
                code="insufficient_space" if exc.errno == errno.ENOSPC else "restore_failed",
            ) from None
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
        with contextlib.suppress(OSError):
            self._file.close()
        if self._on_abort is not None:
            try:
                self._on_abort()
            except Exception:
                logger.exception("cleanup after an aborted restore failed")
