"""Downloads of a backup: its content decrypted on the fly, or the stored artifact as it is
(system-backup-recovery.rst "Download Backup")."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

from audit.services import emit
from backupplatform.errors import Conflict, DomainError, NotFound
from backupplatform.errors import StorageUnavailable as Unavailable

from ..keys import key_for_id
from ..models import Backup
from ..pipeline import restore_stream
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


def backup_download_stream(*, backup: Backup, raw: bool = False, chunk_size: int = 1024 * 1024) -> BackupDownload:
    """Stream a completed backup: by default its content, decrypted and decompressed on the
    fly (a tar for application backups, the pg_dump or SQL file for a database), or with
    ``raw`` the stored, encrypted artifact (restorable offline with the exported key).

    Problems found before the first byte are domain errors: the file gone from its storage
    ``BACKUP_NOT_FOUND``, the storage down ``STORAGE_UNAVAILABLE``, a key or header that
    does not decrypt ``ENCRYPTION_ERROR``. Memory stays bounded whatever the size.
    """
    backend = reader = None
    try:
        # The artifact as every reader opens it (where a backup has copies, a healthy one).
        backend, reader = backup_open_artifact(backup=backup)
        if raw:
            source = iter(lambda: reader.read(chunk_size), b"")
        else:
            source = restore_stream(reader, key_for_id(backup.tenant, backup.key_id))
    except StorageNotFound:
        _close(reader, backend)
        raise NotFound(f"The backup file is missing from storage '{backup.storage.name}'",
                       code="BACKUP_NOT_FOUND", details={"backup_id": backup.pk, "storage": backup.storage.name})
    except StorageUnavailable as exc:
        _close(reader, backend)
        raise Unavailable(f"Storage '{backup.storage.name}' cannot be reached: {exc}")
    except StorageError as exc:
        _close(reader, backend)
        raise Conflict(f"The backup file cannot be read: {exc}", code="STORAGE_ERROR")
    except (ArtifactError, KeyUnwrapError, ImproperlyConfigured) as exc:
        _close(reader, backend)
        raise DomainError(f"The backup cannot be decrypted: {exc}", code="ENCRYPTION_ERROR", status=409,
                          details={"backup_id": backup.pk, "key_id": backup.key_id})

    def chunks() -> Iterator[bytes]:
        try:
            yield from source
        except Exception:  # headers are sent: the client sees a cut download; the log says why
            logger.exception("download of backup %s failed mid-stream", backup.pk)
            raise
        finally:
            _close(reader, backend)

    emit(action="backup_download", tenant=backup.tenant, resource_type="backup", resource_id=backup.pk,
         details={"raw": raw})
    return BackupDownload(
        chunks=chunks(), filename=backup_filename(backup, raw=raw),
        content_type="application/octet-stream" if raw or not backup.application_id else "application/x-tar",
        size=backup.stored_bytes if raw and backup.stored_bytes else (backup.size_bytes or None) if not raw else None)


def _close(*closables) -> None:
    for closable in closables:
        if closable is not None:
            with contextlib.suppress(Exception):
                closable.close()
