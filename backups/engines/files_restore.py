"""Restoring a folder from its tar stream: every member checked (no absolute names, no
``..``, no links out of the target) before it is written (see :mod:`backups.engines.files`)."""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import os
import shutil
import struct
import tarfile
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from .base import (
    CREATE_NEW,
    OVERWRITE,
    READ_SIZE,
    EngineError,
    SinkBase,
    check_strategy,
    grow_pipe,
)

logger = logging.getLogger(__name__)

#: Files up to this size are gathered with headers into one piece; larger ones are read in pieces.
_SMALL_FILE = 256 << 10


_USTAR = struct.Struct("100s8s8s8s12s12s8s1s100s8s32s32s8s8s155s12s")


def _unsafe(message: str) -> EngineError:
    return EngineError(f"Unsafe archive member rejected: {message}", code="unsafe_archive")


def _inside(base: str, path: str) -> bool:
    return os.path.commonpath([base, path]) == base


def _parts(name: str) -> list[str]:
    return [p for p in PurePosixPath(name.replace("\\", "/")).parts if p != "."]


def _source_prefix(source: str | os.PathLike[str] | None, root: str | os.PathLike[str]) -> list[str] | None:
    """The member-name parts of the backed-up path (``/srv/data`` with root ``/``: srv, data)."""
    if source is None:
        return None
    rel = os.path.relpath(os.path.abspath(source), os.path.abspath(root))
    if rel == ".":
        return None
    parts = _parts(rel)
    if ".." in parts:
        raise EngineError(f"Source {source} is not below the root {root}", code="invalid_params")
    return parts


class TarRestoreSink(SinkBase):
    """See :func:`tar_restore_sink`."""

    def __init__(
        self,
        target_dir: str | os.PathLike[str],
        *,
        strategy: str = CREATE_NEW,
        source: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] = "/",
        only: list[str] | None = None,
    ) -> None:
        check_strategy(strategy)
        self._prefix = _source_prefix(source, root)
        self._only = only_patterns(only) if only else None
        self._matched: set[str] = set()
        self._links_out: list[str] = []  # chosen hard links whose file was not chosen
        target = os.path.abspath(target_dir)
        self._created = False
        if strategy == CREATE_NEW:
            if os.path.lexists(target) and (not os.path.isdir(target) or os.listdir(target)):
                raise EngineError(
                    f"Target directory {target} exists and is not empty (strategy create_new)",
                    code="target_exists",
                )
            if not os.path.exists(target):
                os.makedirs(target)
                self._created = True
        elif strategy == OVERWRITE:
            os.makedirs(target, exist_ok=True)
        self._target = os.path.realpath(target)
        self._strategy = strategy
        self._stats: dict[str, Any] = {
            "engine": "files",
            "target": self._target,
            "strategy": strategy,
            "files": 0,
            "directories": 0,
            "symlinks": 0,
            "bytes": 0,
        }
        self._directories: list[tuple[str, int, float]] = []
        self._seen: set[str] = set()
        self._error: BaseException | None = None
        read_fd, write_fd = os.pipe()
        self._reader = os.fdopen(read_fd, "rb", buffering=READ_SIZE)
        self._writer = os.fdopen(write_fd, "wb", buffering=0)
        grow_pipe(self._writer)
        self._thread = threading.Thread(target=self._run, name="tar-restore", daemon=True)
        self._thread.start()

    def write(self, data: bytes, /) -> int:
        if self._done:
            raise EngineError("write after the restore ended", code="restore_failed")
        view = memoryview(data)
        try:
            while view:
                written = self._writer.write(view)
                view = view[written:]
        except (BrokenPipeError, ValueError):
            self._thread.join()
            self._fail()
        return len(data)

    def finish(self) -> dict[str, Any]:
        if self._done:
            return self._stats
        with contextlib.suppress(OSError):
            self._writer.close()
        self._thread.join()
        missing = [p for p in self._only or [] if p not in self._matched]
        if self._error is None and (missing or self._links_out):
            said = [f"not in the backed-up folder: {', '.join(missing)}"] if missing else []
            said += [f"left out: {', '.join(self._links_out)}"] if self._links_out else []
            self._error = EngineError(f"Chosen files: {'; '.join(said)}", code="paths_not_found")
        if self._error is not None:
            self._fail()
        self._done = True
        return self._stats

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self._writer.close()
        with contextlib.suppress(OSError):
            self._reader.close()
        self._thread.join()
        self._rollback()

    def _fail(self) -> None:
        self._done = True
        with contextlib.suppress(OSError):
            self._writer.close()
        self._rollback()
        error = self._error
        if isinstance(error, EngineError):
            raise error
        if isinstance(error, tarfile.FilterError):
            raise _unsafe(str(error))
        raise EngineError(f"Extracting the tar stream failed: {error}", code="restore_failed")

    def _rollback(self) -> None:
        if self._created:
            shutil.rmtree(self._target, ignore_errors=True)

    # -- extraction (thread)

    def _run(self) -> None:
        try:
            with tarfile.open(fileobj=self._reader, mode="r|") as tar:
                for member in tar:
                    self._extract(tar, member)
                # Read to the end so the writer never blocks on a full pipe.
                while self._reader.read(READ_SIZE):
                    pass
            for path, mode, mtime in reversed(self._directories):
                os.chmod(path, mode)
                with contextlib.suppress(OSError):
                    os.utime(path, (mtime, mtime))
        except BaseException as exc:
            self._error = exc
        finally:
            with contextlib.suppress(OSError):
                self._reader.close()

    def _check(self, member: tarfile.TarInfo) -> str:
        """Our own checks; returns the destination path."""
        name = member.name
        if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
            raise _unsafe(f"{name!r} is an absolute path")
        parts = Path(name.replace("\\", "/")).parts
        if ".." in parts:
            raise _unsafe(f"{name!r} contains '..'")
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise _unsafe(f"{name!r} is a device, FIFO or other special file")
        dest = os.path.join(self._target, name)
        parent = os.path.realpath(os.path.dirname(dest))
        if not _inside(self._target, parent):
            raise _unsafe(f"{name!r} would be written outside the target")
        if member.issym():
            link = member.linkname
            if os.path.isabs(link):
                raise _unsafe(f"symlink {name!r} points to an absolute path {link!r}")
            resolved = os.path.realpath(os.path.join(parent, link))
            if not _inside(self._target, resolved):
                raise _unsafe(f"symlink {name!r} points outside the target ({link!r})")
        if member.islnk():
            link = member.linkname
            if os.path.isabs(link) or ".." in Path(link).parts:
                raise _unsafe(f"hard link {name!r} points outside the target ({link!r})")
            resolved = os.path.realpath(os.path.join(self._target, link))
            if not _inside(self._target, resolved) or os.path.normpath(link) not in self._seen:
                raise _unsafe(f"hard link {name!r} points to {link!r}, not an earlier member")
        return dest

    def _filter(self, member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        filtered = tarfile.data_filter(member, path)
        if filtered is not None and (filtered.isreg() or filtered.islnk()):
            filtered = filtered.replace(mode=member.mode & 0o777, deep=False)
        return filtered

    def _relocate(self, member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        """The member renamed relative to the backed-up path; None for a directory above it.

        A tar of ``/srv/data`` names its members ``srv/data/...`` (see :class:`TarSource`);
        restored into ``/restore/x`` they belong at ``/restore/x/...``. The backed-up
        directory itself is the target; a backed-up single file keeps its base name.
        """
        if self._prefix is None:
            return member
        prefix = self._prefix
        for name in (member.name, member.linkname if member.islnk() else ""):
            if name.startswith(("/", "\\")) or ".." in _parts(name):
                self._check(member)  # raises with the precise reason
        parts = _parts(member.name)
        if parts[: len(prefix)] == prefix:
            rest = parts[len(prefix) :]
            name = "/".join(rest) if rest else ("." if member.isdir() else prefix[-1])
        elif prefix[: len(parts)] == parts and member.isdir():
            return None  # a parent directory stored on the way to the backed-up path
        else:
            raise _unsafe(f"{member.name!r} is outside the backed-up path {'/'.join(prefix)!r}")
        changes: dict[str, Any] = {"name": name}
        if member.islnk():
            link = _parts(member.linkname)
            if link[: len(prefix)] != prefix:
                raise _unsafe(f"hard link {member.name!r} points outside the backed-up path")
            changes["linkname"] = "/".join(link[len(prefix) :]) or prefix[-1]
        return member.replace(**changes, deep=False)

    def _chosen(self, member: tarfile.TarInfo) -> bool:
        """With ``only``: whether the member is one of the chosen paths, below one, or a folder
        on the way to one (created to hold it); a hard link to a file left out is left out."""
        if self._only is None:
            return True
        name = os.path.normpath(member.name)
        hits = [p for p in self._only if name == p or name.startswith(p + "/") or fnmatch.fnmatchcase(name, p)]
        if hits and member.islnk() and os.path.normpath(member.linkname) not in self._seen:
            self._links_out.append(f"{name} (a hard link to {os.path.normpath(member.linkname)}: choose it too)")
            return False
        if hits:
            self._matched.update(hits)
            return True
        return member.isdir() and any(p.startswith(name + "/") for p in self._only)

    def _extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        relocated = self._relocate(member)
        if relocated is None or not self._chosen(relocated):
            return
        member = relocated
        dest = self._check(member)
        name = os.path.normpath(member.name)
        if member.isdir():
            if os.path.islink(dest) or (os.path.lexists(dest) and not os.path.isdir(dest)):
                if self._strategy != OVERWRITE:
                    raise EngineError(f"{name!r} exists and is not a directory", code="restore_failed")
                os.unlink(dest)
            self._filter(member, self._target)  # the data filter's checks
            os.makedirs(dest, exist_ok=True)
            os.chmod(dest, 0o700)  # writable while we extract; final mode applied at the end
            self._directories.append((dest, member.mode & 0o777, member.mtime))
            self._stats["directories"] += 1
            self._seen.add(name)
            return
        if os.path.lexists(dest):
            if os.path.isdir(dest) and not os.path.islink(dest):
                raise EngineError(
                    f"{name!r} exists as a directory; cannot replace it with a file",
                    code="restore_failed",
                )
            os.unlink(dest)  # never write through an existing file's symlink
        tar.extract(member, self._target, set_attrs=True, filter=self._filter)
        self._seen.add(name)
        if member.issym():
            self._stats["symlinks"] += 1
        else:
            self._stats["files"] += 1
            self._stats["bytes"] += member.size if member.isreg() else 0


def only_patterns(paths: list[str]) -> list[str]:
    """Paths (or ``fnmatch`` patterns) inside a backed-up folder, as member names: relative,
    without ``..``, ``./`` or a trailing ``/``. Raises ``EngineError`` for any other."""
    patterns = []
    for raw in paths:
        path = str(raw).strip().replace("\\", "/")
        if not path or path.startswith("/") or ".." in _parts(path):
            raise EngineError(f"{raw!r}: a path inside the backed-up folder is required", code="invalid_params")
        if not _parts(path):
            raise EngineError(f"{raw!r}: name a file or folder inside the backed-up folder", code="invalid_params")
        patterns.append("/".join(_parts(path)))
    return sorted(set(patterns))


def tar_restore_sink(
    target_dir: str | os.PathLike[str],
    *,
    strategy: str = CREATE_NEW,
    source: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] = "/",
    only: list[str] | None = None,
) -> TarRestoreSink:
    """A sink extracting a streamed tar below ``target_dir`` (see module doc).

    ``source`` (with the ``root`` the tar was made with): the path that was backed up;
    its contents are restored straight into ``target_dir`` instead of below
    ``target_dir/<source relative to root>``.

    ``only``: restore just these files or folders (paths relative to the backed-up folder, or
    ``fnmatch`` patterns such as ``logs/*.gz``); one that matches nothing fails the restore
    (``paths_not_found``) after the others were extracted.
    """
    return TarRestoreSink(target_dir, strategy=strategy, source=source, root=root, only=only)
