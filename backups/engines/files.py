"""Paths: a streamed tar of selected paths out, a safely extracted tar in.

**Source** (:func:`tar_source`): the tar (PAX format, as ``tarfile`` writes it) is
built while it is read, on the reader's thread: each ``read()`` walks on until it has about
a megabyte (headers and small files gathered, large files read in pieces), so memory stays
bounded whatever the size of the tree and no temporary file, pipe or thread is involved. Member names are relative to
``root`` (default ``/``: ``/var/www/a.html`` is stored as ``var/www/a.html``, as
GNU tar does), so extracting the tar into ``/`` puts files back where they
were; the sink can restore relative to the backed-up path instead (below).

``include`` / ``exclude`` are ``fnmatch`` globs matched against a path relative
to the selected path it was found under (``logs/*.log``; ``*`` also crosses
``/``) and against its base name (``*.log``). An excluded directory is not
descended into. With ``include``, only matching files (and the directories
leading to them) are stored; without it, everything including empty
directories. Symlinks are stored as symlinks (never followed); sockets, FIFOs
and devices are skipped. A file that vanishes or cannot be opened before it is
written is skipped and listed in ``finish()["skipped"]``; an error while a
member's data is being written fails the whole stream.

**Sink** (:func:`tar_restore_sink`): the caller's ``write()`` feeds a pipe that a
reader thread extracts with ``tarfile`` in ``r|`` mode. Every member goes
through our own checks (relative name, no ``..``, regular files / directories /
symlinks / hard links only, link targets inside the target, the resolved
destination inside the target even through existing symlinks on disk) and then
``tarfile``'s ``data`` filter. The first unsafe member fails the restore with
:class:`EngineError` (``code="unsafe_archive"``); nothing is ever written outside
the target. File modes are kept (permission bits only: setuid/setgid/sticky
dropped); ownership is not restored.

Given the backed-up ``source`` path (and the ``root`` the tar was made with),
the sink restores **relative to it**: a tar of ``/srv/data`` (members
``srv/data/...``) restored into ``/restore/x`` gives ``/restore/x/...``, not
``/restore/x/srv/data/...``; a backed-up single file lands as
``/restore/x/<its name>``. Parent directories stored on the way to the source
are skipped; any other member outside the source is unsafe. The tar itself is
unchanged (``tar -xf ... -C /`` still puts files back where they were), so
artifacts made before this restore the same way. Without ``source``, members
are extracted under their stored names.

Strategies: ``create_new`` needs a missing or empty target directory (created;
removed again if the restore fails); ``overwrite`` extracts into an existing
directory, replacing files of the same name (an existing file or symlink is
unlinked first, so nothing is written through a symlink) and leaving others.
"""

from __future__ import annotations

import fnmatch
import grp
import logging
import os
import pwd
import stat
import struct
import tarfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import (
    READ_SIZE,
    EngineError,
    StreamBase,
)

logger = logging.getLogger(__name__)

#: Files up to this size are gathered with headers into one piece; larger ones are read in pieces.
_SMALL_FILE = 256 << 10


_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12s")


def _octal(value: int, digits: int) -> bytes:
    return b"%0*o\0" % (digits - 1, value)


def tar_header(info: tarfile.TarInfo) -> bytes:
    """``info.tobuf(PAX_FORMAT)``, byte for byte, ten times faster for the common case (a
    ustar header without a PAX extension: ASCII names that fit, whole-second mtime, small
    ids); anything else goes through ``tobuf``."""
    name = info.name + "/" if info.type == tarfile.DIRTYPE and not info.name.endswith("/") else info.name
    try:
        fields = [part.encode("ascii") for part in (name, info.linkname, info.uname, info.gname)]
    except UnicodeEncodeError:
        fields = None
    if (
        fields is None
        or len(fields[0]) > 100
        or len(fields[1]) > 100
        or len(fields[2]) > 32
        or len(fields[3]) > 32
        or not isinstance(info.mtime, int)
        or not 0 <= info.mtime < 8**11
        or not 0 <= info.uid < 8**7
        or not 0 <= info.gid < 8**7
        or not 0 <= info.size < 8**11
        or info.pax_headers
        or info.type in (tarfile.CHRTYPE, tarfile.BLKTYPE)
    ):
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    header = _USTAR.pack(
        fields[0],
        _octal(info.mode & 0o7777, 8),
        _octal(info.uid, 8),
        _octal(info.gid, 8),
        _octal(info.size, 12),
        _octal(info.mtime, 12),
        b" " * 8,
        info.type,
        fields[1],
        tarfile.POSIX_MAGIC,
        fields[2],
        fields[3],
        b"",
        b"",  # no device fields: not a device
        b"",
        b"",
    )
    return header[:148] + b"%06o\0" % sum(header) + header[155:]


def _matches(patterns: Sequence[str], relative: str) -> bool:
    base = os.path.basename(relative)
    return any(fnmatch.fnmatchcase(relative, p) or fnmatch.fnmatchcase(base, p) for p in patterns)


class TarSource(StreamBase):
    """See :func:`tar_source`."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        root: str | os.PathLike[str] = "/",
    ) -> None:
        if not paths:
            raise EngineError("No paths given to back up", code="invalid_params")
        self._root = os.path.abspath(root)
        self._paths = [os.path.abspath(p) for p in paths]
        for path in self._paths:
            if not os.path.lexists(path):
                raise EngineError(f"Path not found: {path}", code="path_missing")
            if os.path.commonpath([self._root, path]) != self._root:
                raise EngineError(f"Path {path} is not below the root {self._root}", code="invalid_params")
        self._include = list(include or [])
        self._exclude = list(exclude or [])
        self.info: dict[str, Any] = {
            "engine": "files",
            "tool": "python-tarfile",
            "format": "tar",
            "root": self._root,
            "paths": self._paths,
            "include": self._include,
            "exclude": self._exclude,
        }
        self._stats: dict[str, Any] = {
            "files": 0,
            "directories": 0,
            "symlinks": 0,
            "bytes": 0,
            "skipped": [],
        }
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._buffer = bytearray()
        self._written = 0
        self._inodes: dict[tuple[int, int], str] = {}
        self._unames: dict[int, str] = {}
        self._gnames: dict[int, str] = {}
        self._added_dirs: set[str] = set()
        self._pieces = self._generate()
        self._leftover = memoryview(b"")
        self._exhausted = False

    # -- reading side: the tar is built on the reader's thread, as fast as it is read

    def read(self, size: int = READ_SIZE, /) -> bytes:
        if size is None or size < 0:
            size = READ_SIZE
        while not self._leftover:
            if self._exhausted:
                return b""
            try:
                piece = next(self._pieces)
            except StopIteration:
                self._exhausted = True
                return b""
            except BaseException as exc:  # reported by finish(): the stream just ends here
                self._exhausted = True
                if not self._stop.is_set():
                    self._error = exc
                return b""
            if len(piece) <= size:
                return piece
            self._leftover = memoryview(piece)
        out = bytes(self._leftover[:size])
        self._leftover = self._leftover[size:]
        return out

    def finish(self) -> dict[str, Any]:
        if self._done:
            return self._stats
        self._done = True
        complete = self._exhausted and not self._leftover
        self._pieces.close()
        if self._error is not None:
            if isinstance(self._error, EngineError):
                raise self._error
            raise EngineError(f"Creating the tar stream failed: {self._error}", code="dump_failed")
        if not complete:
            raise EngineError("The tar stream was not read to its end: it is incomplete", code="dump_failed")
        self.info.update({k: self._stats[k] for k in ("files", "directories", "symlinks", "bytes")})
        return self._stats

    def kill(self) -> None:
        self._done = True
        self._stop.set()
        self._exhausted = True
        self._leftover = memoryview(b"")

    # -- building the tar (a generator of pieces of about READ_SIZE bytes)
    #
    # Headers come from TarInfo.tobuf (PAX, as tarfile writes them); headers and small
    # files are gathered into pieces of about READ_SIZE, large files are read in pieces of
    # READ_SIZE straight from the file (no pipe, no thread, one copy).

    def _generate(self) -> Iterator[bytes]:
        for path in self._paths:
            yield from self._add_tree(path)
        # End of archive: two zero blocks, the whole padded to a record (as tarfile writes it).
        yield from self._emit(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        yield from self._emit(tarfile.NUL * (-self._written % tarfile.RECORDSIZE))
        if self._buffer:
            yield self._take()

    def _take(self) -> bytes:
        out = bytes(self._buffer)
        self._buffer.clear()
        return out

    def _emit(self, data: bytes) -> Iterator[bytes]:
        self._buffer += data
        self._written += len(data)
        if len(self._buffer) >= READ_SIZE:
            yield self._take()

    def _emit_file(self, handle: Any, size: int) -> Iterator[bytes]:
        if size <= _SMALL_FILE:
            data = handle.read(size)
            if len(data) != size:
                raise OSError(f"{handle.name}: file shrank while it was read (unexpected end of data)")
            yield from self._emit(data)
        else:
            if self._buffer:
                yield self._take()
            remaining = size
            while remaining:
                if self._stop.is_set():
                    raise EngineError("tar stream cancelled", code="cancelled")
                data = handle.read(min(remaining, READ_SIZE))
                if not data:
                    raise OSError(f"{handle.name}: file shrank while it was read (unexpected end of data)")
                remaining -= len(data)
                yield data
            self._written += size
        yield from self._emit(tarfile.NUL * (-size % tarfile.BLOCKSIZE))

    def _tarinfo(self, full: str, arcname: str) -> tarfile.TarInfo | None:
        """What ``TarFile.gettarinfo`` gives, with user and group names looked up once each."""
        st = os.lstat(full)
        info = tarfile.TarInfo(arcname)
        mode = st.st_mode
        if stat.S_ISREG(mode):
            inode = (st.st_ino, st.st_dev)
            first = self._inodes.get(inode)
            if st.st_nlink > 1 and first is not None and first != arcname:
                info.type, info.linkname = tarfile.LNKTYPE, first
            else:
                info.type, info.size = tarfile.REGTYPE, st.st_size
                if st.st_nlink > 1:
                    self._inodes[inode] = arcname
        elif stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
        else:
            return None
        # Whole seconds, as GNU tar stores them (a fraction would cost a PAX header per file).
        info.mode, info.uid, info.gid, info.mtime = mode, st.st_uid, st.st_gid, int(st.st_mtime)
        info.uname = self._name_of(self._unames, st.st_uid, pwd.getpwuid)
        info.gname = self._name_of(self._gnames, st.st_gid, grp.getgrgid)
        return info

    @staticmethod
    def _name_of(cache: dict[int, str], ident: int, lookup: Any) -> str:
        name = cache.get(ident)
        if name is None:
            try:
                name = lookup(ident)[0]
            except KeyError:
                name = ""
            cache[ident] = name
        return name

    def _arcname(self, full: str) -> str:
        rel = os.path.relpath(full, self._root)
        return rel

    def _add_parents(self, full: str, top: str) -> Iterator[bytes]:
        """With include patterns, directories are added only on the way to an included file."""
        chain = []
        parent = os.path.dirname(full)
        while parent not in self._added_dirs and os.path.commonpath([top, parent]) == top:
            chain.append(parent)
            if parent == top:
                break
            parent = os.path.dirname(parent)
        for directory in reversed(chain):
            if directory != self._root:
                yield from self._add_one(directory)
            self._added_dirs.add(directory)

    def _add_tree(self, top: str) -> Iterator[bytes]:
        if not os.path.isdir(top) or os.path.islink(top):
            if not self._include or _matches(self._include, os.path.basename(top)):
                yield from self._add_parents(top, os.path.dirname(top))
                yield from self._add_one(top)
            return
        if not self._include and top != self._root:
            yield from self._add_one(top)
            self._added_dirs.add(top)
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            if self._stop.is_set():
                raise EngineError("tar stream cancelled", code="cancelled")
            kept = []
            for name in sorted(dirnames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, top)
                if _matches(self._exclude, rel):
                    continue
                if os.path.islink(full):  # a symlink to a directory: stored as a link
                    filenames.append(name)
                    continue
                kept.append(name)
                if not self._include:
                    yield from self._add_one(full)
                    self._added_dirs.add(full)
            dirnames[:] = kept
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, top)
                if _matches(self._exclude, rel):
                    continue
                if self._include:
                    if not _matches(self._include, rel):
                        continue
                    yield from self._add_parents(full, top)
                yield from self._add_one(full)

    def _add_one(self, full: str) -> Iterator[bytes]:
        arcname = self._arcname(full)
        try:
            info = self._tarinfo(full, arcname)
        except OSError as exc:
            self._stats["skipped"].append({"path": full, "reason": exc.strerror or str(exc)})
            return
        if info is None or not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            self._stats["skipped"].append({"path": full, "reason": "not a regular file, directory or link"})
            return
        if info.isreg():
            try:
                handle = open(full, "rb", buffering=0)  # noqa: SIM115 - closed below
            except OSError as exc:
                self._stats["skipped"].append({"path": full, "reason": exc.strerror or str(exc)})
                return
            with handle:
                yield from self._emit(tar_header(info))
                yield from self._emit_file(handle, info.size)
            self._stats["files"] += 1
            self._stats["bytes"] += info.size
        else:
            yield from self._emit(tar_header(info))
            if info.isdir():
                self._stats["directories"] += 1
            elif info.issym():
                self._stats["symlinks"] += 1
            else:
                self._stats["files"] += 1


def tar_source(
    paths: Sequence[str | os.PathLike[str]],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    *,
    root: str | os.PathLike[str] = "/",
) -> TarSource:
    """A tar stream of ``paths`` (see module doc); ``finish()`` returns counts and skipped paths."""
    return TarSource(paths, include=include, exclude=exclude, root=root)


def iter_tree(root: str | os.PathLike[str]) -> Iterable[tuple[str, str, int, bytes | str | None]]:
    """(relative path, kind, permission bits, content or link target) for every entry; for tests/diffs."""
    base = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                yield rel, "symlink", 0, os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                yield rel, "dir", stat.S_IMODE(st.st_mode), None
            else:
                yield rel, "file", stat.S_IMODE(st.st_mode), Path(full).read_bytes()


from .files_restore import TarRestoreSink, tar_restore_sink  # noqa: E402,F401  (part of this module's API)
