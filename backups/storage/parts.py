"""Streaming uploads in growing parts, several in flight, within a fixed memory budget.

The write side shared by S3 (multipart upload) and Azure (staged blocks + commit block
list): both take parts of a size the client chooses, in any order and concurrently, and
publish the object atomically in one final call. What differs is four calls, which the
subclasses implement: start, send one part, finish, cancel (and one request for an object
smaller than the first part).

- Parts start at ``part_size`` and double every tenth of ``max_parts`` (see
  :func:`part_size_for`), so the provider's part-count limit never caps the object below its
  size limit while a typical backup still uses small parts.
- Up to ``concurrency`` parts are sent at once on a small thread pool while the next one
  fills; the producer waits when every slot is busy.
- Each part buffer is a ``SpooledTemporaryFile`` holding at most ``memory_budget /
  (concurrency + 1)`` bytes in memory and spilling to a temp file beyond that, so memory
  stays under ``memory_budget`` whatever the part size.
- Every request goes through the storage retry policy (exponential backoff with jitter).
"""

from __future__ import annotations

import logging
import tempfile
import threading
from abc import abstractmethod
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .base import StorageWriter
from .errors import StorageError
from .retry import RetryPolicy

logger = logging.getLogger(__name__)


def part_size_for(number: int, *, initial: int, max_parts: int, max_part_size: int) -> int:
    """Size of part ``number`` (1-based): ``initial``, doubled every tenth of ``max_parts``."""
    step = max(1, max_parts // 10)
    return min(initial << ((number - 1) // step), max_part_size)


class Part:
    """One part being filled or sent: memory up to ``in_memory`` bytes, then a temp file."""

    def __init__(self, number: int, size: int, in_memory: int, spool_dir: str | None) -> None:
        self.number = number
        self.size = size
        self.length = 0
        self.file = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - closed by the writer
            max_size=in_memory, prefix="bp-part-", dir=spool_dir
        )

    @property
    def room(self) -> int:
        return self.size - self.length

    def in_memory_bytes(self) -> int:
        # SpooledTemporaryFile has no public "rolled over?"; _rolled is stable since Python 2.6.
        return 0 if self.file._rolled else self.length

    def read_all(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        try:
            self.file.close()
        except OSError:
            logger.debug("closing a part buffer failed", exc_info=True)


class PartWriter(StorageWriter):
    """Fills growing parts, sends them concurrently, publishes on commit (see module doc)."""

    #: The provider's limits (subclasses set them).
    max_part_size: int = 5 * 1024**3
    limit_text: str = ""

    def __init__(
        self,
        name: str,
        *,
        policy: RetryPolicy,
        part_size: int,
        max_parts: int,
        concurrency: int,
        memory_budget: int,
        spool_dir: str | None,
    ) -> None:
        super().__init__(name)
        self.policy = policy
        self.part_size = part_size
        self.max_parts = max_parts
        self.concurrency = max(1, concurrency)
        self.memory_budget = memory_budget
        self.spool_dir = spool_dir
        self._started = False
        self._tokens: dict[int, Any] = {}
        self._part: Part | None = None
        self._next_number = 1
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._futures: list[Future[None]] = []
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._stopping = False
        self._sending: dict[int, Part] = {}
        #: Largest number of part bytes held in memory at once.
        self.peak_memory = 0
        #: Parts sent (or being sent).
        self.parts = 0

    # -- what a provider implements -------------------------------------------------------

    @abstractmethod
    def _start(self) -> None:
        """Begin the upload (before the first part)."""

    @abstractmethod
    def _send(self, part: Part) -> Any:
        """Send one part (called again on a transient failure); returns what ``_finish`` needs."""

    @abstractmethod
    def _finish(self, tokens: list[Any]) -> None:
        """Publish the object from the parts' tokens, in part order."""

    @abstractmethod
    def _send_whole(self, body: bytes) -> None:
        """Store an object smaller than one part in one request."""

    @abstractmethod
    def _cancel(self) -> None:
        """Discard a started upload (parts in flight have finished)."""

    # -- filling ----------------------------------------------------------------------------

    def _new_part(self) -> Part:
        number = self._next_number
        if number > self.max_parts:
            raise StorageError(
                f"{self.name} is larger than the {self.max_parts} parts of an upload can hold"
                f"{f' ({self.limit_text})' if self.limit_text else ''}"
            )
        self._next_number += 1
        size = part_size_for(number, initial=self.part_size, max_parts=self.max_parts, max_part_size=self.max_part_size)
        return Part(number, size, self.memory_budget // (self.concurrency + 1), self.spool_dir)

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._raise_failure()
        view = memoryview(data).cast("B")
        while view:
            if self._part is None:
                self._part = self._new_part()
            part = self._part
            take = min(part.room, len(view))
            part.file.write(view[:take])
            part.length += take
            view = view[take:]
            self._track_memory()
            if part.room == 0:
                self._part = None
                self._submit(part)

    def _track_memory(self) -> None:
        with self._lock:
            held = sum(p.in_memory_bytes() for p in self._sending.values())
        if self._part is not None:
            held += self._part.in_memory_bytes()
        self.peak_memory = max(self.peak_memory, held)

    # -- sending ------------------------------------------------------------------------------

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    def _submit(self, part: Part) -> None:
        if not self._started:
            self._start()
            self._started = True
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="upload-part")
        # Wait for a free slot: at most `concurrency` parts in flight, whatever the stream's speed.
        while not self._slots.acquire(timeout=0.5):
            self._raise_failure()
        if self._error is not None:
            self._slots.release()
            raise self._error
        with self._lock:
            self._sending[part.number] = part
        assert self._pool is not None
        future = self._pool.submit(self._send_with_retry, part)
        future.add_done_callback(lambda f, p=part: self._part_done(f, p))
        self._futures.append(future)
        self.parts += 1

    def _send_with_retry(self, part: Part) -> None:
        def attempt() -> Any:
            if self._stopping:
                raise StorageError(f"Upload of {self.name} was aborted")
            part.file.seek(0)
            return self._send(part)

        token = self.policy.call(attempt, what=f"{self.name} (part {part.number})")
        with self._lock:
            self._tokens[part.number] = token
        logger.debug("Sent part %d (%d bytes) of %s", part.number, part.length, self.name)

    def _part_done(self, future: Future[None], part: Part) -> None:
        try:
            exc = None if future.cancelled() else future.exception()
            if exc is not None and self._error is None:
                self._error = exc
        finally:
            with self._lock:
                self._sending.pop(part.number, None)
            part.close()
            self._slots.release()

    def _drain(self) -> None:
        """Wait for every submitted part; raise the first failure."""
        for future in self._futures:
            if not future.cancelled():
                future.exception()  # waits; the callback recorded any error
        self._raise_failure()

    def _shutdown_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # -- ending -------------------------------------------------------------------------------

    def _commit(self) -> None:
        if not self._started:
            part, self._part = self._part, None
            body = b""
            if part is not None:
                body = part.read_all()
                part.close()
            self.policy.call(self._send_whole, body, what=self.name)
            return
        if self._part is not None and self._part.length:
            part, self._part = self._part, None
            self._submit(part)
        self._drain()
        self._finish([self._tokens[n] for n in sorted(self._tokens)])
        self._shutdown_pool()

    def _abort(self) -> None:
        self._stopping = True
        self._shutdown_pool()  # parts still in flight finish (or fail) before the cancel
        if self._part is not None:
            self._part.close()
            self._part = None
        if self._started:
            self._started = False
            self._cancel()
