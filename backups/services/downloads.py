"""Downloads of a backup: its content decrypted on the fly, or the stored artifact as it is
(system-backup-recovery.rst "Download Backup")."""

from __future__ import annotations

import contextlib
import logging
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import zipstream
from django.core.exceptions import ImproperlyConfigured

from audit.services import emit
from backupplatform.errors import Conflict, DomainError, NotFound
from backupplatform.errors import StorageUnavailable as Unavailable

from ..engines.base import IterReader
from ..engines.bundle import iter_bundle_files, join_bundle_parts
from ..keys import key_for_id
from ..models import Backup
from ..pipeline import decrypt_stream, restore_stream
from ..pipeline.errors import ArtifactError, KeyUnwrapError
from ..storage import StorageError, StorageUnavailable
from ..storage.errors import StorageNotFound
from .backups import artifact_extension, backup_open_artifact

logger = logging.getLogger(__name__)


@dataclass
class BackupDownload:
    """A backup's file, streamed: ``chunks`` closes the storage when it ends."""

    chunks: Iterator[bytes]
    filename: str
    content_type: str
    size: int | None


def backup_filename(backup: Backup, *, raw: bool = False) -> str:
    """What a downloaded backup is called: the stored artifact's name for the encrypted
    file, ``<backup name>.<tar|dump|sql>`` for its decrypted content."""
    if raw:
        return backup.storage_path.rsplit("/", 1)[-1] or f"backup-{backup.pk}.bpaf"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", backup.name or f"backup_{backup.pk}").strip("._") or f"backup_{backup.pk}"
    return f"{stem[:150]}.{artifact_extension(backup)}"


ARCHIVE_FORMATS = ("tar.gz", "zip")


def backup_download_stream(
    *, backup: Backup, raw: bool = False, archive: str | None = None, chunk_size: int = 1024 * 1024
) -> BackupDownload:
    """Stream a completed backup: by default its content, decrypted and decompressed on the
    fly (a tar for application backups, the pg_dump or SQL file for a database), or with
    ``raw`` the stored, encrypted artifact (restorable offline with the exported key).

    ``archive`` re-packs an application's tar on the way (workspace-backup-api.md "Download"):
    ``tar.gz`` (a gzip artifact is already one: decrypted only, with its size) or ``zip``.

    Problems found before the first byte are domain errors: the file gone from its storage
    ``BACKUP_NOT_FOUND``, the storage down ``STORAGE_UNAVAILABLE``, a key or header that
    does not decrypt ``ENCRYPTION_ERROR``. Memory stays bounded whatever the size.
    """
    backend = reader = None
    try:
        # The artifact as every reader opens it (where a backup has copies, a healthy one).
        backend, reader = backup_open_artifact(backup=backup)
        size = None
        if raw:
            source = iter(lambda: reader.read(chunk_size), b"")
        elif archive == "tar.gz" and backup.compression == "gzip" and not _has_parts(backup):
            source, size = decrypt_stream(reader, key_for_id(backup.tenant, backup.key_id)), backup.compressed_bytes
        elif archive == "tar.gz":
            source = gzip_stream(
                _whole_members(backup, restore_stream(reader, key_for_id(backup.tenant, backup.key_id)))
            )
        elif archive == "zip":
            source = zip_from_tar(restore_stream(reader, key_for_id(backup.tenant, backup.key_id)))
        else:
            source = _whole_members(backup, restore_stream(reader, key_for_id(backup.tenant, backup.key_id)))
    except StorageNotFound:
        _close(reader, backend)
        raise NotFound(
            f"The backup file is missing from storage '{backup.storage.name}'",
            code="BACKUP_NOT_FOUND",
            details={"backup_id": backup.pk, "storage": backup.storage.name},
        )
    except StorageUnavailable as exc:
        _close(reader, backend)
        raise Unavailable(f"Storage '{backup.storage.name}' cannot be reached: {exc}")
    except StorageError as exc:
        _close(reader, backend)
        raise Conflict(f"The backup file cannot be read: {exc}", code="STORAGE_ERROR")
    except (ArtifactError, KeyUnwrapError, ImproperlyConfigured) as exc:
        _close(reader, backend)
        raise DomainError(
            f"The backup cannot be decrypted: {exc}",
            code="ENCRYPTION_ERROR",
            status=409,
            details={"backup_id": backup.pk, "key_id": backup.key_id},
        )

    def chunks() -> Iterator[bytes]:
        try:
            yield from source
        except Exception:  # headers are sent: the client sees a cut download; the log says why
            logger.exception("download of backup %s failed mid-stream", backup.pk)
            raise
        finally:
            _close(reader, backend)

    emit(
        action="backup_download",
        tenant=backup.tenant,
        resource_type="backup",
        resource_id=backup.pk,
        details={"raw": raw, **({"format": archive} if archive else {})},
    )
    if archive:
        return BackupDownload(
            chunks=chunks(),
            filename=f"backup-{backup.pk}.{archive}",
            content_type="application/octet-stream",
            size=size,
        )
    return BackupDownload(
        chunks=chunks(),
        filename=backup_filename(backup, raw=raw),
        content_type="application/octet-stream" if raw or not backup.application_id else "application/x-tar",
        size=backup.stored_bytes
        if raw and backup.stored_bytes
        else (None if _has_parts(backup) else backup.size_bytes or None)
        if not raw
        else None,
    )


def _bundle_members(backup: Backup) -> list[dict]:
    return list(((backup.manifest or {}).get("bundle") or {}).get("members") or [])


def _has_parts(backup: Backup) -> bool:
    """An application artifact whose large members are stored in parts (bp-bundle/2)."""
    return any(member.get("parts") for member in _bundle_members(backup))


def _whole_members(backup: Backup, pieces: Iterator[bytes]) -> Iterator[bytes]:
    """A download holds each source as one file, however the artifact stores it."""
    return join_bundle_parts(pieces, _bundle_members(backup)) if _has_parts(backup) else pieces


def gzip_stream(pieces: Iterator[bytes]) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    for piece in pieces:
        if out := compressor.compress(piece):
            yield out
    yield compressor.flush()


def zip_from_tar(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Re-pack a tar stream as a zip, member by member, never seeking and never holding a
    member in memory (zipstream-ng, with sizes written after each member's data)."""
    with tarfile.open(fileobj=IterReader(pieces), mode="r|") as tar:
        files = iter_bundle_files(tar)  # an application's members in parts come out whole
        archive = zipstream.ZipStream(compress_type=zipstream.ZIP_DEFLATED)

        def queue_next() -> None:
            item = next(files, None)
            if item is None:
                return
            name, _, chunks = item

            def data() -> Iterator[bytes]:
                yield from chunks
                # A streamed tar reads forward only: the next member can be opened once this
                # one is consumed, so it joins the zip's queue now (read while it is generated).
                queue_next()

            archive.add(data(), name)

        queue_next()
        yield from archive


def _close(*closables) -> None:
    for closable in closables:
        if closable is not None:
            with contextlib.suppress(Exception):
                closable.close()
