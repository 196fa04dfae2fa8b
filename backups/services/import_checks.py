"""Recognising and checking an uploaded file before anything is imported (see
:mod:`backups.services.imports`): by content, never by name; archives member by member,
with caps against decompression bombs; artifacts of this platform authenticated with the
tenant's data key. A refusal is an ``ImportRefused`` with the reason.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import posixpath
import subprocess
import tarfile
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import zstandard
from django.conf import settings

from backupplatform.errors import DomainError, ValidationFailed
from tenants.models import Tenant

from ..engines.base import READ_SIZE, EngineError
from ..engines.bundle import MANIFEST_NAME, iter_bundle_files
from ..keys import tenant_data_key
from ..pipeline import ArtifactError, WrongKey, open_artifact
from ..pipeline.format import MAGIC as BPAF_MAGIC

if TYPE_CHECKING:
    from .imports import StagedUpload

logger = logging.getLogger(__name__)

PG_CUSTOM_MAGIC = b"PGDMP"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
FILES_MEMBER = "00-files.tar"
KIND_LABELS = {
    "bpaf": "backup of this platform",
    "pg_custom": "pg_dump custom-format dump",
    "pg_plain": "pg_dump plain SQL dump",
    "mysql_sql": "mysqldump SQL dump",
    "tar": "tar archive",
    "tar.gz": "gzip-compressed tar archive",
    "tar.zst": "zstd-compressed tar archive",
    "config": "configuration export",
}


class ImportRefused(DomainError):
    """An upload that is not imported; nothing of it was kept."""

    status = 400
    code = "VALIDATION_ERROR"
    default_message = "The file cannot be imported"


def refuse(message: str, *, reason: str, code: str = "VALIDATION_ERROR") -> ImportRefused:
    return ImportRefused(message, code=code, details={"file": [message], "reason": reason})


def limits() -> dict[str, int]:
    return {
        "max_upload_bytes": int(getattr(settings, "IMPORT_MAX_UPLOAD_BYTES", 5 * 1024**3)),
        "max_unpacked_bytes": int(getattr(settings, "IMPORT_MAX_UNPACKED_BYTES", 50 * 1024**3)),
        "max_ratio": int(getattr(settings, "IMPORT_MAX_RATIO", 200)),
        "ratio_after_bytes": int(getattr(settings, "IMPORT_RATIO_AFTER_BYTES", 16 * 1024**2)),
        "max_members": int(getattr(settings, "IMPORT_MAX_MEMBERS", 1_000_000)),
    }


# --- recognising and checking -------------------------------------------------------------------


@dataclass
class Inspection:
    kind: str
    size: int
    sha256: str
    signature: str = "not_applicable"
    inner: str = ""  # bpaf: what the artifact holds (bundle, pg_custom, pg_plain, mysql_sql)
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class Counting(io.RawIOBase):
    """Counts the bytes read from a file (the packed side of the ratio check)."""

    def __init__(self, handle):
        self.handle, self.count = handle, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.handle.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class _Guarded(io.RawIOBase):
    """The unpacked side: refuses past the size cap and past the ratio cap."""

    def __init__(self, inner, packed: Counting, caps: dict[str, int]):
        self.inner, self.packed, self.caps, self.count = inner, packed, caps, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self.inner.read(len(buffer))
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            raise refuse(f"The compressed data is truncated or corrupt ({exc})", reason="corrupt") from None
        self.count += len(data)
        if self.count > self.caps["max_unpacked_bytes"]:
            raise refuse(
                f"The archive unpacks to more than {self.caps['max_unpacked_bytes']} bytes", reason="too_large_unpacked"
            )
        if self.count > self.caps["ratio_after_bytes"] and self.count > self.caps["max_ratio"] * max(
            self.packed.count, 1
        ):
            raise refuse(
                f"The archive unpacks to more than {self.caps['max_ratio']} times its size (a decompression bomb?)",
                reason="compression_ratio",
            )
        buffer[: len(data)] = data
        return len(data)


def decompressed(kind: str, handle) -> tuple[io.BufferedReader, Counting]:
    packed = Counting(handle)
    if kind == "tar.gz":
        inner = gzip.GzipFile(fileobj=io.BufferedReader(packed, READ_SIZE), mode="rb")
    elif kind == "tar.zst":
        inner = zstandard.ZstdDecompressor().stream_reader(
            io.BufferedReader(packed, READ_SIZE), read_across_frames=True
        )
    else:
        inner = io.BufferedReader(packed, READ_SIZE)
    return io.BufferedReader(_Guarded(inner, packed, limits()), READ_SIZE), packed


def check_tar(reader, *, max_members: int) -> dict[str, Any]:
    """Walk a tar stream: every member must be safe to unpack under one folder."""
    names: set[str] = set()
    counts = {"files": 0, "directories": 0, "links": 0, "bytes": 0}
    newest = 0
    try:
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for n, member in enumerate(tar):
                if n >= max_members:
                    raise refuse(f"The archive has more than {max_members} members", reason="too_many_members")
                name = member.name
                parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
                if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
                    raise refuse(f"Unsafe member {name!r}: an absolute path", reason="absolute_path")
                if ".." in parts:
                    raise refuse(f"Unsafe member {name!r}: contains '..'", reason="path_traversal")
                if member.issym():
                    target = member.linkname
                    resolved = posixpath.normpath(posixpath.join(posixpath.dirname("/".join(parts)), target))
                    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                        raise refuse(
                            f"Unsafe member {name!r}: a symlink pointing outside ({target!r})", reason="link_outside"
                        )
                    counts["links"] += 1
                elif member.islnk():
                    target = posixpath.normpath(member.linkname)
                    if member.linkname.startswith("/") or ".." in target.split("/") or target not in names:
                        raise refuse(
                            f"Unsafe member {name!r}: a hard link to {member.linkname!r}, not an "
                            "earlier member of the archive",
                            reason="link_outside",
                        )
                    counts["links"] += 1
                elif member.isdir():
                    counts["directories"] += 1
                elif member.isreg():
                    counts["files"] += 1
                    handle = tar.extractfile(member)
                    size = 0
                    while block := handle.read(READ_SIZE):
                        size += len(block)
                    if size != member.size:
                        raise refuse(f"The archive is truncated inside {name!r}", reason="truncated")
                    counts["bytes"] += size
                else:
                    raise refuse(f"Unsafe member {name!r}: a device, FIFO or other special file", reason="special_file")
                names.add(posixpath.normpath("/".join(parts)) if parts else ".")
                newest = max(newest, int(member.mtime or 0))
    except tarfile.TarError as exc:
        raise refuse(f"The archive is truncated or corrupt ({exc})", reason="corrupt") from None
    if not names:
        raise refuse("The archive is empty", reason="empty")
    return {"counts": counts, "newest_mtime": newest or None}


def _sniff(head: bytes) -> str | None:
    if head.startswith(BPAF_MAGIC):
        return "bpaf"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "pg_custom"
    if head.startswith(GZIP_MAGIC):
        return "tar.gz"
    if head.startswith(ZSTD_MAGIC):
        return "tar.zst"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    text = head[:8192].decode("utf-8", errors="replace").lstrip("\ufeff")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        return "config"
    if "-- PostgreSQL database dump" in text[:2000]:
        return "pg_plain"
    if stripped.startswith(("-- MySQL dump", "-- MariaDB dump")):
        return "mysql_sql"
    return None


def _tail(path: str, size: int = 8192) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, os.path.getsize(path) - size))
        return handle.read().decode("utf-8", errors="replace")


def _check_sql(kind: str, path: str) -> dict:
    tail = _tail(path)
    closing = "-- PostgreSQL database dump complete" if kind == "pg_plain" else "-- Dump completed"
    if closing not in tail:
        raise refuse(f"The SQL dump is truncated: its closing line '{closing}' is missing", reason="truncated")
    return {}


def _check_pg_custom(path: str) -> dict:
    proc = subprocess.run(["pg_restore", "-f", os.devnull, path], capture_output=True, timeout=3600)
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", errors="replace").strip().splitlines()[-1:] or ["unreadable"]
        raise refuse(f"The pg_dump file is truncated or corrupt ({message[0][:300]})", reason="corrupt")
    listing = subprocess.run(["pg_restore", "-l", path], capture_output=True, timeout=600, text=True).stdout
    entries = [line for line in listing.splitlines() if line and not line.startswith(";")]
    database = next(
        (line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith(";     dbname:")), ""
    )
    created = next(
        (line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith(";     Archive created at")),
        "",
    )
    return {"database": database, "toc_entries": len(entries), "archive_created_at": _pg_time(created)}


def _pg_time(text: str) -> str | None:
    """pg_restore's "Archive created at 2026-11-29 17:40:01 UTC" as ISO 8601 (None if unreadable)."""
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")
    except ValueError:
        return None


def _check_bpaf(tenant: Tenant, path: str, caps: dict) -> tuple[str, dict]:
    _, key = tenant_data_key(tenant)
    with open(path, "rb") as handle:
        try:
            reader = open_artifact(handle, key)
        except WrongKey:
            raise refuse(
                "The artifact is encrypted with another key than this workspace's (or was tampered with)",
                reason="wrong_key",
                code="ENCRYPTION_ERROR",
            ) from None
        except ArtifactError as exc:
            raise refuse(f"The artifact is corrupt: {exc}", reason="corrupt", code="ENCRYPTION_ERROR") from None
        plain = PlainReader(reader)
        head = plain.peek(8192)
        if head.startswith(PG_CUSTOM_MAGIC):
            inner, details = "pg_custom", {}
            while plain.read(READ_SIZE):
                pass
        elif len(head) >= 262 and head[257:262] == b"ustar":
            inner = "bundle"
            details = _check_bundle(plain, caps)
        else:
            text = head.decode("utf-8", errors="replace")
            inner = (
                "mysql_sql"
                if text.lstrip().startswith(("-- MySQL dump", "-- MariaDB dump"))
                else ("pg_plain" if "PostgreSQL database dump" in text else "unknown")
            )
            while plain.read(READ_SIZE):
                pass
    if inner == "unknown":
        raise refuse("The artifact decrypts, but holds nothing this platform restores", reason="unsupported")
    return inner, {**details, "key_id": reader.header.key_id, "compression": reader.header.compression.label}


class PlainReader(io.RawIOBase):
    """A readable over an artifact's plaintext that authenticates every chunk as it goes."""

    def __init__(self, artifact):
        self.pieces = artifact.iter_plaintext()
        self.buffer = b""

    def readable(self) -> bool:
        return True

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            try:
                piece = next(self.pieces)
            except StopIteration:
                return
            except ArtifactError as exc:
                raise refuse(
                    f"The artifact failed authentication: {exc}", reason="tampered", code="ENCRYPTION_ERROR"
                ) from None
            self.buffer += piece

    def peek(self, size: int) -> bytes:
        self._fill(size)
        return self.buffer[:size]

    def readinto(self, buffer) -> int:
        self._fill(len(buffer))
        data, self.buffer = self.buffer[: len(buffer)], self.buffer[len(buffer) :]
        buffer[: len(data)] = data
        return len(data)


def _check_bundle(reader, caps: dict) -> dict:
    """An application artifact: each member's SHA-256 against its ``manifest.json``."""
    digests: dict[str, str] = {}
    manifest = None
    try:
        with tarfile.open(fileobj=io.BufferedReader(reader, READ_SIZE), mode="r|") as tar:
            # Members stored in parts (bp-bundle/2) are joined: the manifest lists whole members.
            for name, first, chunks in iter_bundle_files(tar, strict=True):
                if name == MANIFEST_NAME:
                    if first.size > 64 << 20:
                        raise refuse("The artifact's manifest.json is too large", reason="corrupt")
                    manifest = json.loads(b"".join(chunks).decode("utf-8"))
                    continue
                digest = hashlib.sha256()
                for block in chunks:
                    digest.update(block)
                digests[name] = digest.hexdigest()
    except EngineError as exc:
        raise refuse(f"Unexpected member in the artifact ({exc})", reason="corrupt") from None
    except (tarfile.TarError, ValueError) as exc:
        raise refuse(f"The artifact's archive is corrupt ({exc})", reason="corrupt") from None
    if not isinstance(manifest, dict):
        raise refuse("The artifact's manifest.json is missing", reason="corrupt")
    listed = {m.get("name"): m.get("sha256") for m in manifest.get("members") or []}
    if listed != digests:
        raise refuse("The artifact's members do not match the checksums of its manifest", reason="checksum")
    return {"manifest": manifest}


def inspect_upload(*, tenant: Tenant, upload: StagedUpload) -> Inspection:
    """Recognise and check a staged upload; raises ``ImportRefused`` (nothing is kept then:
    the caller deletes the staged file)."""
    caps = limits()
    if upload.size == 0:
        raise refuse("The file is empty", reason="empty")
    with open(upload.path, "rb") as handle:
        head = handle.read(8192)
    kind = _sniff(head)
    if kind is None:
        raise refuse(
            "Unsupported file: not a backup of this platform, a pg_dump or mysqldump file, a tar "
            "archive (plain, gzip or zstd) or a configuration export",
            reason="unsupported_type",
        )
    inspection = Inspection(kind=kind, size=upload.size, sha256=upload.sha256)
    if kind == "bpaf":
        inspection.inner, inspection.details = _check_bpaf(tenant, upload.path, caps)
        inspection.signature = "verified"
    elif kind == "pg_custom":
        inspection.details = _check_pg_custom(upload.path)
    elif kind in ("pg_plain", "mysql_sql"):
        inspection.details = _check_sql(kind, upload.path)
    elif kind in ("tar", "tar.gz", "tar.zst"):
        with open(upload.path, "rb") as handle:
            reader, packed = decompressed(kind, handle)
            checked = check_tar(reader, max_members=caps["max_members"])
            # Anything after the archive's end (a second archive, junk) is read too, so a
            # truncated compressed stream is caught and the ratio covers every byte.
            while reader.read(READ_SIZE):
                pass
        inspection.details = {**checked["counts"], "unpacked_bytes": reader.raw.count}
        if checked["newest_mtime"]:  # when the archive was made: its newest member's time
            inspection.details["newest_member_at"] = (
                datetime.fromtimestamp(checked["newest_mtime"], tz=UTC).isoformat().replace("+00:00", "Z")
            )
        if kind == "tar.gz" and packed.count < upload.size:
            raise refuse("The gzip stream ends before the file does", reason="corrupt")
    elif kind == "config":
        if upload.size > 64 << 20:
            raise refuse("A configuration export is at most 64 MiB", reason="too_large")
        from .config import config_components

        try:
            with open(upload.path, "rb") as handle:
                document = json.load(handle)
        except (ValueError, UnicodeDecodeError):
            raise refuse(
                "Unsupported file: it starts like JSON but is not valid JSON", reason="unsupported_type"
            ) from None
        try:
            components = config_components(document)
        except ValidationFailed:
            raise refuse(
                "This JSON file is not a configuration export of this platform", reason="unsupported_type"
            ) from None
        inspection.details = {"components": components, "exported_at": document.get("timestamp")}
    return inspection


def describe(inspection: Inspection) -> dict[str, Any]:
    """The console's ``validation`` body for an inspected file."""
    from .copies import human_bytes

    components = {
        "pg_custom": ["database"],
        "pg_plain": ["database"],
        "mysql_sql": ["database"],
        "tar": ["data"],
        "tar.gz": ["data"],
        "tar.zst": ["data"],
    }.get(inspection.kind, [])
    created = None
    manifest = inspection.details.get("manifest") or {}
    if inspection.kind == "bpaf":
        components = sorted({s.get("component") or "data" for s in manifest.get("sources") or []}) or (
            ["database"] if inspection.inner != "bundle" else []
        )
        created = manifest.get("created_at")
    if inspection.kind == "config":
        components = inspection.details.get("components", [])
        created = inspection.details.get("exported_at")
    created = created or inspection.details.get("newest_member_at") or inspection.details.get("archive_created_at")
    return {
        "file_format": "valid",
        "format": inspection.kind,
        "format_description": KIND_LABELS[inspection.kind],
        "signature": inspection.signature,
        "checksum": f"sha256:{inspection.sha256}",
        "version_compatibility": "compatible",
        "size": human_bytes(inspection.size),
        "size_bytes": inspection.size,
        "type": "config" if inspection.kind == "config" else "full",
        "created": created,
        "gateway_id": (manifest.get("application") or {}).get("name"),
        "components": components,
        "details": {k: v for k, v in inspection.details.items() if k != "manifest"},
    }
