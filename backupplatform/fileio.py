"""Writing big buffers to files quickly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Bytes per ``write()`` call. Linux copies a 256 KiB write into the page cache about three
#: times faster than a 1 MiB one (0.4 s against 1.4 s per GB on the benchmark machine), and
#: the pipeline hands out pieces of about 1 MiB (artifact chunks, decompressed dump pieces).
WRITE_SLICE = 256 << 10


def write_in_slices(write: Callable[[Any], Any], data: bytes | bytearray | memoryview) -> None:
    """``write(data)`` as calls of at most ``WRITE_SLICE`` bytes (``write`` writes all it is
    given, as a buffered file's does)."""
    if len(data) <= WRITE_SLICE:
        write(data)
        return
    with memoryview(data) as view, view.cast("B") as flat:
        for start in range(0, len(flat), WRITE_SLICE):
            with flat[start : start + WRITE_SLICE] as part:
                write(part)
