"""Streaming compressors and bounded-output decompressors for the pipeline.

gzip output carries a real gzip header (``gunzip`` reads it) and zstd output is
one standard frame (``zstd -d`` reads it). zstandard is imported lazily so the
offline decrypt command works with only ``cryptography`` installed when the
artifact is gzip or uncompressed.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Iterator
from typing import Protocol

from .errors import ArtifactCorrupt
from .format import BytesLike, Compression

logger = logging.getLogger(__name__)

DEFAULT_LEVELS = {Compression.NONE: 0, Compression.GZIP: 6, Compression.ZSTD: 3}
# Upper bound of one decompressed piece yielded by restore, whatever the compression ratio.
OUTPUT_PIECE = 1 << 20
_GZIP_WBITS = 31  # 16 + MAX_WBITS: write / expect a gzip header and trailer


class Compressor(Protocol):
    """What the pipeline needs from a compressor: zlib's compressobj shape."""

    def compress(self, data: BytesLike, /) -> bytes: ...

    def flush(self) -> bytes: ...


class _Passthrough:
    def compress(self, data: BytesLike, /) -> bytes:
        return bytes(data)

    def flush(self) -> bytes:
        return b""


class _Zstd:
    def __init__(self, level: int, threads: int) -> None:
        import zstandard

        # Checksum on, like the zstd CLI, so `zstd -d` also checks what it writes.
        cctx = zstandard.ZstdCompressor(level=level, threads=threads, write_checksum=True)
        self._obj = cctx.compressobj()
        self._finish = zstandard.COMPRESSOBJ_FLUSH_FINISH

    def compress(self, data: BytesLike, /) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush(self._finish)


def make_compressor(compression: Compression, level: int | None = None, *, threads: int = 0) -> Compressor:
    """Return a fresh compressor; ``level=None`` means gzip 6 / zstd 3.

    ``threads`` only applies to zstd (zstandard's worker threads; 0 = compress on
    the calling thread, which matches ``zstd -3`` without ``-T``).
    """
    if level is None:
        level = DEFAULT_LEVELS[compression]
    if compression is Compression.NONE:
        return _Passthrough()
    if compression is Compression.GZIP:
        return zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)
    return _Zstd(level, threads)


def decompress_pieces(compression: Compression, pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Decompress a stream given as pieces; yield output pieces of at most OUTPUT_PIECE bytes.

    Output is bounded per piece even for data that compresses 1000:1, so a
    restore of a mostly-empty table cannot balloon in memory.
    """
    if compression is Compression.NONE:
        for piece in pieces:
            if piece:
                yield piece
        return
    if compression is Compression.GZIP:
        yield from _gunzip(pieces)
        return
    yield from _unzstd(pieces)


def _gunzip(pieces: Iterable[bytes]) -> Iterator[bytes]:
    dec = zlib.decompressobj(_GZIP_WBITS)
    member_started = False
    try:
        for piece in pieces:
            data = piece
            while data:
                member_started = True
                out = dec.decompress(data, OUTPUT_PIECE)
                if out:
                    yield out
                if dec.eof:
                    # gzip allows concatenated members; gunzip reads them all, so do we.
                    data = dec.unused_data
                    dec = zlib.decompressobj(_GZIP_WBITS)
                    member_started = False
                else:
                    data = dec.unconsumed_tail
        if member_started:
            tail = dec.flush()
            if tail:
                yield tail
            if not dec.eof:
                raise ArtifactCorrupt("gzip stream ends before its trailer")
    except zlib.error as exc:
        raise ArtifactCorrupt(f"gzip stream is invalid: {exc}")


class _PieceReader:
    """File-like ``read(n)`` over an iterator of byte pieces, for zstandard's stream_reader."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self._current = memoryview(b"")

    def read(self, size: int = -1) -> bytes:
        while not self._current:
            piece = next(self._pieces, None)
            if piece is None:
                return b""
            self._current = memoryview(piece)
        if size < 0 or size >= len(self._current):
            out, self._current = self._current, memoryview(b"")
        else:
            out, self._current = self._current[:size], self._current[size:]
        return bytes(out)


def _unzstd(pieces: Iterable[bytes]) -> Iterator[bytes]:
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(
        _PieceReader(pieces), read_size=OUTPUT_PIECE, read_across_frames=True
    )
    try:
        while True:
            out = reader.read(OUTPUT_PIECE)
            if not out:
                return
            yield out
    except zstandard.ZstdError as exc:
        raise ArtifactCorrupt(f"zstd stream is invalid: {exc}")
