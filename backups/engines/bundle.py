"""An application backup as ONE artifact: a tar of every source plus ``manifest.json``.

Layout (a plain tar, PAX format; ``tar -x`` unpacks it offline)::

    <member name>   one per source, e.g. "databases/app.pgdump", "files.tar", "config.json"
    ...
    manifest.json   last: format, created_at, members [{name, size, sha256, info}], + extras

Tar needs each member's size before its data, and a dump's size is unknown until
it ends, so :func:`bundle_source` **spools each member to a temporary file**
(``spool_dir``, default the system temp dir) while hashing it, then copies it
into the tar stream and deletes it. Memory stays bounded; temporary disk is the
size of the largest single member (members are spooled one at a time). Each
member's tar header also carries its sha256 (PAX record ``BP.sha256``), so
:func:`bundle_restore` can verify a member **before** it finishes that member's
sink (a mismatch aborts the sink: a database created for it is dropped); at the
end, every member is checked again against ``manifest.json`` (names, sizes, sha256).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from .base import (
    READ_SIZE,
    EngineError,
    RestoreSink,
    SourceStream,
    StreamBase,
    as_readable,
    grow_pipe,
)

MANIFEST_NAME = "manifest.json"
BUNDLE_FORMAT = "bp-bundle/1"
SHA_RECORD = "BP.sha256"

SourceFactory = Callable[[], SourceStream]
SinkFactory = Callable[[], RestoreSink]


def _check_member_name(name: str) -> None:
    path = PurePosixPath(name)
    if (
        not name
        or name == MANIFEST_NAME
        or path.is_absolute()
        or ".." in path.parts
        or "\\" in name
    ):
        raise EngineError(f"Invalid bundle member name {name!r}", code="invalid_params")


class BundleSource(StreamBase):
    """See :func:`bundle_source`. ``finish()`` returns the manifest (also in ``info["manifest"]``)."""

    def __init__(
        self,
        members: Sequence[tuple[str, SourceFactory]],
        manifest_extra: Mapping[str, Any] | None = None,
        *,
        spool_dir: str | None = None,
    ) -> None:
        names = [name for name, _ in members]
        for name in names:
            _check_member_name(name)
        if len(set(names)) != len(names):
            raise EngineError("Bundle member names must be unique", code="invalid_params")
        self._members = list(members)
        self._extra = dict(manifest_extra or {})
        self._spool_dir = spool_dir
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
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb", buffering=0)
        self._writer = os.fdopen(write_fd, "wb", buffering=READ_SIZE)
        grow_pipe(self._reader)
        self._thread = threading.Thread(target=self._run, name="bundle-source", daemon=True)
        self._thread.start()

    def read(self, size: int = READ_SIZE, /) -> bytes:
        if size is None or size < 0:
            size = READ_SIZE
        return self._reader.read(size) or b""

    def finish(self) -> dict[str, Any]:
        if self._done:
            assert self._manifest is not None
            return self._manifest
        self._done = True
        self._reader.close()
        self._thread.join()
        if self._error is not None:
            if isinstance(self._error, EngineError):
                raise self._error
            raise EngineError(f"Building the bundle failed: {self._error}", code="dump_failed")
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
        with contextlib.suppress(OSError):
            self._reader.close()
        self._thread.join()

    def _run(self) -> None:
        try:
            entries = []
            with tarfile.open(fileobj=self._writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for name, factory in self._members:
                    entries.append(self._add_member(tar, name, factory))
                manifest = {
                    **self._extra,
                    "format": BUNDLE_FORMAT,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(),
                    "members": entries,
                }
                payload = json.dumps(manifest, indent=2, sort_keys=True, default=str).encode()
                info = tarfile.TarInfo(MANIFEST_NAME)
                info.size, info.mode, info.mtime = len(payload), 0o600, int(time.time())
                tar.addfile(info, io.BytesIO(payload))
            self._manifest = manifest
        except BaseException as exc:
            self._error = (
                EngineError("bundle cancelled", code="cancelled") if self._stop.is_set() else exc
            )
        finally:
            with contextlib.suppress(OSError):
                self._writer.close()

    def _add_member(
        self, tar: tarfile.TarFile, name: str, factory: SourceFactory
    ) -> dict[str, Any]:
        if self._stop.is_set():
            raise EngineError("bundle cancelled", code="cancelled")
        with tempfile.TemporaryFile(dir=self._spool_dir, prefix="bp-bundle-") as spool:
            source = factory()
            with self._lock:
                self._current = source
            try:
                digest = hashlib.sha256()
                size = 0
                while block := source.read(READ_SIZE):
                    spool.write(block)
                    digest.update(block)
                    size += len(block)
                result = source.finish()
            except BaseException:
                source.kill()
                raise
            finally:
                with self._lock:
                    self._current = None
            sha = digest.hexdigest()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = size, 0o600, int(time.time())
            info.pax_headers = {SHA_RECORD: sha}
            spool.seek(0)
            tar.addfile(info, spool)
        entry_info = dict(getattr(source, "info", {}) or {})
        entry_info.pop("manifest", None)
        return {"name": name, "size": size, "sha256": sha, "info": entry_info, "result": result}


def bundle_source(
    members: Sequence[tuple[str, SourceFactory]],
    manifest_extra: Mapping[str, Any] | None = None,
    *,
    spool_dir: str | None = None,
) -> BundleSource:
    """A tar stream of every member (each from its source factory, in order) then ``manifest.json``.

    Factories are called one at a time, when their turn comes (so only one dump
    runs at a time). ``manifest_extra`` is merged into the manifest's top level
    (``format``, ``created_at`` and ``members`` are ours).
    """
    return BundleSource(members, manifest_extra, spool_dir=spool_dir)


def bundle_restore(stream: Any, handlers: Mapping[str, SinkFactory]) -> dict[str, Any]:
    """Feed each member of a bundle stream into the sink ``handlers[name]()`` creates.

    ``stream``: a readable, an iterable of bytes (e.g. ``restore_stream(...)``) or bytes.
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
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                if member.name == MANIFEST_NAME:
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
                    raise EngineError(
                        f"Unexpected bundle member {member.name!r}", code="invalid_bundle"
                    )
                if member.name in seen:
                    raise EngineError(
                        f"Duplicate bundle member {member.name!r}", code="invalid_bundle"
                    )
                seen[member.name] = _restore_member(tar, member, handlers.get(member.name))
    except tarfile.TarError as exc:
        raise EngineError(
            f"Bundle is not a valid tar stream: {exc}", code="invalid_bundle"
        ) from None
    except EngineError as exc:
        exc.restored = seen  # type: ignore[attr-defined]
        raise
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
        error = EngineError(
            "Bundle verification failed: " + "; ".join(problems), code="checksum_mismatch"
        )
        error.restored = seen  # type: ignore[attr-defined]
        raise error
    return {"manifest": manifest, "members": seen}


def _restore_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, factory: SinkFactory | None
) -> dict[str, Any]:
    expected = member.pax_headers.get(SHA_RECORD)
    handle = tar.extractfile(member)
    assert handle is not None
    sink = factory() if factory is not None else None
    try:
        digest = hashlib.sha256()
        size = 0
        while block := handle.read(READ_SIZE):
            digest.update(block)
            size += len(block)
            if sink is not None:
                sink.write(block)
        sha = digest.hexdigest()
        if expected is not None and sha != expected:
            raise EngineError(
                f"Bundle member {member.name!r} is corrupt: sha256 {sha} does not match the recorded {expected}",
                code="checksum_mismatch",
            )
        result = sink.finish() if sink is not None else None
    except BaseException:
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.abort()
        raise
    return {"size": size, "sha256": sha, "restored": sink is not None, "result": result}
