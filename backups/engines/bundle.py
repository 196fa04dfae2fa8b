"""An application backup as ONE artifact: a tar of every source plus ``manifest.json``.

Layout (a plain tar, PAX format; ``tar -x`` unpacks it offline)::

    <member name>             a source that fit in one segment, e.g. "00-config.json"
    <member name>.00000000    a larger source, cut into parts of ``segment_size`` bytes
    <member name>.00000001    (the last part may be shorter) ...
    manifest.json             last: format, created_at, members [{name, size, sha256, parts, info}]

Tar needs each entry's size before its data, and a dump's size is unknown until
it ends. So the stream is built **while the sources are read**: each source is
cut into segments (default 4 MiB, held in memory), and each segment becomes one
tar entry as soon as it is full. Nothing is written to disk, the compressor
works on the first megabytes while the rest is still being dumped, and memory
stays at about one segment whatever the size of a member. A source that ends
within its first segment is one entry under its own name (as in ``bp-bundle/1``);
a longer one is stored as numbered parts ``<name>.NNNNNNNN`` (PAX records
``BP.member`` and ``BP.part`` on each, ``BP.size`` and ``BP.sha256`` of the whole
member on the last). Offline: ``cat <name>.* > <name>`` joins them.

Each whole member's (or last part's) tar header carries the member's sha256 (PAX
record ``BP.sha256``), so :func:`bundle_restore` can verify a member **before**
it finishes that member's sink (a mismatch aborts the sink: a database created
for it is dropped); at the end, every member is checked again against
``manifest.json`` (names, sizes, sha256). :func:`bundle_restore` reads both
``bp-bundle/1`` (whole members only, as earlier versions wrote them) and
``bp-bundle/2``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from .base import (
    READ_SIZE,
    EngineError,
    RestoreSink,
    SourceStream,
    StreamBase,
    as_readable,
)

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "bp-bundle/2"
READABLE_FORMATS = ("bp-bundle/1", "bp-bundle/2")
SHA_RECORD = "BP.sha256"
SIZE_RECORD = "BP.size"
MEMBER_RECORD = "BP.member"
PART_RECORD = "BP.part"
#: Bytes of a member per tar entry (held in memory while it fills).
SEGMENT_SIZE = 4 << 20
#: Parts are numbered with 8 digits, so names sort in order (``cat name.*``).
MAX_PARTS = 10**8

SourceFactory = Callable[[], SourceStream]
SinkFactory = Callable[[], RestoreSink]


def part_name(name: str, index: int) -> str:
    return f"{name}.{index:08d}"


def _check_member_name(name: str) -> None:
    path = PurePosixPath(name)
    if not name or name == MANIFEST_NAME or path.is_absolute() or ".." in path.parts or "\\" in name:
        raise EngineError(f"Invalid bundle member name {name!r}", code="invalid_params")


def _entry_header(name: str, size: int, records: Mapping[str, str]) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    info.pax_headers = dict(records)
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return tarfile.NUL * (-size % tarfile.BLOCKSIZE)


class BundleSource(StreamBase):
    """See :func:`bundle_source`. ``finish()`` returns the manifest (also in ``info["manifest"]``).

    ``read()`` builds the tar on the caller's thread: it reads the current source and
    returns its bytes framed as tar entries, so the tar is produced exactly as fast
    as it is consumed, with no thread, pipe or temporary file of its own.
    """

    def __init__(
        self,
        members: Sequence[tuple[str, SourceFactory]],
        manifest_extra: Mapping[str, Any] | None = None,
        *,
        segment_size: int = SEGMENT_SIZE,
    ) -> None:
        names = [name for name, _ in members]
        for name in names:
            _check_member_name(name)
        if len(set(names)) != len(names):
            raise EngineError("Bundle member names must be unique", code="invalid_params")
        if segment_size <= 0:
            raise ValueError("segment_size must be positive")
        self._members = list(members)
        self._extra = dict(manifest_extra or {})
        self._segment = segment_size
        self.info: dict[str, Any] = {
            "engine": "bundle",
            "tool": "python-tarfile",
            "format": "tar",
            "members": names,
        }
        self._manifest: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._current: SourceStream | None = None
        self._pieces = self._generate()
        self._leftover = memoryview(b"")
        self._exhausted = False

    def read(self, size: int = READ_SIZE, /) -> bytes:
        if size is None or size < 0:
            size = READ_SIZE
        while not self._leftover:
            if self._exhausted or self._error is not None:
                return b""
            try:
                piece = next(self._pieces)
            except StopIteration:
                self._exhausted = True
                return b""
            except BaseException as exc:
                self._error = self._describe(exc)
                raise self._error from None
            if len(piece) <= size:
                return piece
            self._leftover = memoryview(piece)
        out = bytes(self._leftover[:size])
        self._leftover = self._leftover[size:]
        return out

    def _describe(self, exc: BaseException) -> BaseException:
        if self._stop.is_set():
            return EngineError("bundle cancelled", code="cancelled")
        if isinstance(exc, EngineError):
            return exc
        if isinstance(exc, Exception):
            return EngineError(f"Building the bundle failed: {exc}", code="dump_failed")
        return exc

    def finish(self) -> dict[str, Any]:
        if self._done:
            if self._manifest is None:
                raise self._error or EngineError("bundle cancelled", code="cancelled")
            return self._manifest
        self._done = True
        if self._error is not None:
            raise self._error
        if not self._exhausted or self._leftover:
            self.kill()
            raise EngineError("The bundle was not read to its end: it is incomplete", code="dump_failed")
        assert self._manifest is not None
        self.info["manifest"] = self._manifest
        return self._manifest

    def kill(self) -> None:
        self._done = True
        self._stop.set()
        with self._lock:
            current = self._current
        if current is not None:
            with contextlib.suppress(Exception):
                current.kill()

    # -- the tar, piece by piece

    def _generate(self) -> Iterator[bytes]:
        entries = []
        for name, factory in self._members:
            entries.append((yield from self._member(name, factory)))
        manifest = {
            **self._extra,
            "format": BUNDLE_FORMAT,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "members": entries,
        }
        payload = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
        # End of archive: two zero blocks, padded to a whole record as tarfile and GNU tar do.
        end = tarfile.NUL * (2 * tarfile.BLOCKSIZE)
        written = len(payload) + len(_padding(len(payload))) + len(end)
        yield (
            _entry_header(MANIFEST_NAME, len(payload), {})
            + payload
            + _padding(len(payload))
            + end
            + tarfile.NUL * (-written % tarfile.RECORDSIZE)
        )
        self._manifest = manifest

    def _member(self, name: str, factory: SourceFactory) -> Iterator[bytes]:
        if self._stop.is_set():
            raise EngineError("bundle cancelled", code="cancelled")
        source = factory()
        with self._lock:
            self._current = source
        segment = self._segment
        digest = hashlib.sha256()
        size = parts = 0
        pending = b""
        eof = False
        try:
            while True:
                blocks: list[bytes] = []
                filled = 0
                while True:
                    if not pending and not eof:
                        if self._stop.is_set():
                            raise EngineError("bundle cancelled", code="cancelled")
                        # Sized to the room left, so a block rarely straddles two segments.
                        pending = source.read(min(READ_SIZE, segment - filled) or READ_SIZE)
                        eof = not pending
                    if not pending or filled == segment:
                        break
                    take = min(len(pending), segment - filled)
                    block, pending = (pending, b"") if take == len(pending) else (pending[:take], pending[take:])
                    digest.update(block)
                    blocks.append(block)
                    filled += take
                size += filled
                last = eof and not pending
                if last:
                    result = source.finish()  # a failed dump fails before its last bytes are out
                if last and parts == 0:
                    records = {SHA_RECORD: digest.hexdigest()}
                    entry = name
                else:
                    if parts >= MAX_PARTS:
                        raise EngineError(f"Bundle member {name!r} is too large", code="dump_failed")
                    records = {MEMBER_RECORD: name, PART_RECORD: str(parts)}
                    if last:
                        records.update({SIZE_RECORD: str(size), SHA_RECORD: digest.hexdigest()})
                    entry = part_name(name, parts)
                    parts += 1
                yield _entry_header(entry, filled, records)
                yield from blocks
                if filled % tarfile.BLOCKSIZE:
                    yield _padding(filled)
                if last:
                    break
        except BaseException:
            with contextlib.suppress(Exception):
                source.kill()
            raise
        finally:
            with self._lock:
                self._current = None
        entry_info = dict(getattr(source, "info", {}) or {})
        entry_info.pop("manifest", None)
        return {
            "name": name,
            "size": size,
            "sha256": digest.hexdigest(),
            "parts": parts,
            "info": entry_info,
            "result": result,
        }


def bundle_source(
    members: Sequence[tuple[str, SourceFactory]],
    manifest_extra: Mapping[str, Any] | None = None,
    *,
    segment_size: int = SEGMENT_SIZE,
) -> BundleSource:
    """A tar stream of every member (each from its source factory, in order) then ``manifest.json``.

    Factories are called one at a time, when their turn comes (so only one dump
    runs at a time). ``manifest_extra`` is merged into the manifest's top level
    (``format``, ``created_at`` and ``members`` are ours). ``segment_size``: the
    bytes of a member per tar entry (see the module doc).
    """
    return BundleSource(members, manifest_extra, segment_size=segment_size)


class _MemberReader:
    """One member being restored: its sink, digest and size, across its parts."""

    def __init__(self, name: str, factory: SinkFactory | None) -> None:
        self.name = name
        self.sink = factory() if factory is not None else None
        self.digest = hashlib.sha256()
        self.size = 0
        self.parts = 0

    def feed(self, handle: Any) -> None:
        while block := handle.read(READ_SIZE):
            self.digest.update(block)
            self.size += len(block)
            if self.sink is not None:
                self.sink.write(block)

    def finish(self, expected_sha: str | None, expected_size: int | None) -> dict[str, Any]:
        sha = self.digest.hexdigest()
        if (expected_sha is not None and sha != expected_sha) or (
            expected_size is not None and self.size != expected_size
        ):
            raise EngineError(
                f"Bundle member {self.name!r} is corrupt: sha256 {sha} does not match the recorded {expected_sha}",
                code="checksum_mismatch",
            )
        restored = self.sink is not None
        result = self.sink.finish() if self.sink is not None else None
        self.sink = None
        return {"size": self.size, "sha256": sha, "restored": restored, "result": result}

    def abort(self) -> None:
        if self.sink is not None:
            with contextlib.suppress(Exception):
                self.sink.abort()
            self.sink = None


def bundle_restore(stream: Any, handlers: Mapping[str, SinkFactory]) -> dict[str, Any]:
    """Feed each member of a bundle stream into the sink ``handlers[name]()`` creates.

    ``stream``: a readable, an iterable of bytes (e.g. ``restore_stream(...)``) or bytes.
    Reads ``bp-bundle/1`` and ``bp-bundle/2`` (members in parts are joined).
    Members without a handler are read and verified but not restored. Each
    member's sha256 is checked before its sink is finished (mismatch: the sink is
    aborted and :class:`EngineError` ``code="checksum_mismatch"`` raised); at the
    end all members are checked against ``manifest.json``. A failure after some
    members were restored leaves those restored (their results are in the error's
    ``restored`` attribute). Returns ``{"manifest": {...}, "members": {name:
    {"size", "sha256", "restored", "result"}}}``.
    """
    reader = as_readable(stream)
    seen: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] | None = None
    current: _MemberReader | None = None
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if member.name == MANIFEST_NAME:
                    if current is not None:
                        raise EngineError(
                            f"Bundle member {current.name!r} ends without its last part",
                            code="invalid_bundle",
                        )
                    handle = tar.extractfile(member)
                    assert handle is not None
                    try:
                        manifest = json.loads(handle.read().decode("utf-8"))
                    except ValueError as exc:
                        raise EngineError(
                            f"Bundle manifest is not valid JSON: {exc}", code="checksum_mismatch"
                        ) from None
                    continue
                if not member.isreg():
                    raise EngineError(f"Unexpected bundle member {member.name!r}", code="invalid_bundle")
                records = member.pax_headers
                name = records.get(MEMBER_RECORD, member.name)
                part = records.get(PART_RECORD)
                if current is None or current.name != name:
                    if current is not None:
                        raise EngineError(
                            f"Bundle member {current.name!r} ends without its last part",
                            code="invalid_bundle",
                        )
                    if name in seen:
                        raise EngineError(f"Duplicate bundle member {name!r}", code="invalid_bundle")
                    current = _MemberReader(name, handlers.get(name))
                if part is not None and (part != str(current.parts) or member.name != part_name(name, current.parts)):
                    raise EngineError(
                        f"Bundle member {name!r}: part {member.name!r} is out of order",
                        code="invalid_bundle",
                    )
                handle = tar.extractfile(member)
                assert handle is not None
                current.feed(handle)
                current.parts += 1
                if part is None or SHA_RECORD in records:  # a whole member or its last part
                    size = records.get(SIZE_RECORD)
                    seen[name] = current.finish(records.get(SHA_RECORD), int(size) if size is not None else None)
                    current = None
    except tarfile.TarError as exc:
        if current is not None:
            current.abort()
        raise EngineError(f"Bundle is not a valid tar stream: {exc}", code="invalid_bundle") from None
    except BaseException as exc:
        if current is not None:
            current.abort()
        if isinstance(exc, EngineError):
            exc.restored = seen  # type: ignore[attr-defined]
        raise
    if current is not None:
        current.abort()
        raise EngineError(f"Bundle member {current.name!r} ends without its last part", code="invalid_bundle")
    if manifest is None:
        raise EngineError("Bundle has no manifest.json (truncated?)", code="invalid_bundle")
    listed = {entry["name"]: entry for entry in manifest.get("members", [])}
    problems = []
    for name, entry in listed.items():
        got = seen.get(name)
        if got is None:
            problems.append(f"{name}: listed in the manifest but missing")
        elif got["sha256"] != entry.get("sha256") or got["size"] != entry.get("size"):
            problems.append(f"{name}: sha256/size differ from the manifest")
    problems += [f"{name}: not listed in the manifest" for name in seen if name not in listed]
    problems += [f"{name}: no such member in the bundle" for name in handlers if name not in seen]
    if problems:
        error = EngineError("Bundle verification failed: " + "; ".join(problems), code="checksum_mismatch")
        error.restored = seen  # type: ignore[attr-defined]
        raise error
    return {"manifest": manifest, "members": seen}


def iter_bundle_files(
    tar: tarfile.TarFile, *, strict: bool = False
) -> Iterator[tuple[str, tarfile.TarInfo, Iterator[bytes]]]:
    """``(name, first tar entry, chunks)`` for each regular file of a bundle read forward
    (``r|``), a member's parts joined into one file. Consume each ``chunks`` before asking
    for the next file. Other entries are skipped, or refused (``invalid_bundle``) if ``strict``."""
    members = iter(tar)
    member = next(members, None)
    while member is not None:
        if not member.isfile():
            if strict:
                raise EngineError(f"Unexpected bundle member {member.name!r}", code="invalid_bundle")
            member = next(members, None)
            continue
        name = member.pax_headers.get(MEMBER_RECORD, member.name)
        following: list[tarfile.TarInfo | None] = [None]

        def chunks(current: tarfile.TarInfo = member, name: str = name, following: list = following) -> Iterator[bytes]:
            while True:
                handle = tar.extractfile(current)
                assert handle is not None
                while block := handle.read(READ_SIZE):
                    yield block
                records = current.pax_headers
                last = MEMBER_RECORD not in records or SHA_RECORD in records
                after = next(members, None)
                if last or after is None or after.pax_headers.get(MEMBER_RECORD) != name:
                    following[0] = after
                    return
                current = after

        yield name, member, chunks()
        member = following[0]


def join_bundle_parts(pieces: Any, members: Sequence[Mapping[str, Any]]) -> Iterator[bytes]:
    """The bundle's tar with each member in parts written as one whole entry (``bp-bundle/1``
    shape: what ``tar -x`` users expect in a download). ``members`` is the manifest's list
    (name, size, sha256), which gives the sizes the entries need up front."""
    listed = {entry["name"]: entry for entry in members}
    written = 0
    with tarfile.open(fileobj=as_readable(pieces), mode="r|") as tar:
        for name, first, chunks in iter_bundle_files(tar):
            if MEMBER_RECORD not in first.pax_headers:  # whole: as it is
                expected, records = first.size, dict(first.pax_headers)
            elif name in listed:
                expected = int(listed[name]["size"])
                records = {SHA_RECORD: str(listed[name]["sha256"])}
            else:
                raise EngineError(f"{name}: not listed in the manifest", code="checksum_mismatch")
            header = _entry_header(name, expected, records)
            written += len(header)
            yield header
            size = 0
            for block in chunks:
                size += len(block)
                yield block
            if size != expected:
                raise EngineError(f"{name}: size differs from the manifest", code="checksum_mismatch")
            padding = _padding(size)
            written += size + len(padding)
            yield padding
    end = tarfile.NUL * (2 * tarfile.BLOCKSIZE)
    yield end + tarfile.NUL * (-(written + len(end)) % tarfile.RECORDSIZE)
