"""Storage backends: one interface over local, S3, MinIO, SFTP, GCS and Azure.

Transport only (no Django models): the ``Storage`` model's type,
configuration and decrypted credentials go in as plain values::

    errors = validate_config("s3", configuration, credentials)   # {} when valid
    with open_backend("s3", configuration, credentials) as backend:
        with backend.open_writer("tenant-1/backup-42.dump.zst.enc") as writer:
            for chunk in stream:
                writer.write(chunk)
            writer.commit()                     # visible now, atomically
        result = backend.probe()                # write/read/delete round trip

See ``validation.py`` for the configuration keys of each type and
``base.py`` for the backend interface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .base import (
    ProbeResult,
    ProbeStep,
    StorageBackend,
    StorageWriter,
    StoredObject,
    iter_chunks,
)
from .cloud import open_azure, open_gcs
from .errors import (
    InvalidObjectName,
    InvalidStorageConfig,
    StorageAuthError,
    StorageError,
    StorageNotFound,
    StorageNotInstalled,
    StorageUnavailable,
)
from .local import LocalBackend
from .retry import NO_RETRY, RetryPolicy, default_policy
from .s3 import S3Backend
from .sftp import SFTPBackend
from .targets import network_errors
from .validation import STORAGE_TYPES, validate_config

logger = logging.getLogger(__name__)

__all__ = [
    "NO_RETRY",
    "STORAGE_TYPES",
    "InvalidObjectName",
    "InvalidStorageConfig",
    "ProbeResult",
    "ProbeStep",
    "RetryPolicy",
    "StorageAuthError",
    "StorageBackend",
    "StorageError",
    "StorageNotFound",
    "StorageNotInstalled",
    "StorageUnavailable",
    "StorageWriter",
    "StoredObject",
    "default_policy",
    "iter_chunks",
    "open_backend",
    "probe",
    "validate_config",
]


def open_backend(
    type: str,
    configuration: Mapping[str, Any] | None,
    credentials: Mapping[str, Any] | None,
    **options: Any,
) -> StorageBackend:
    """Validate the configuration and build the backend for ``type``.

    Raises :class:`InvalidStorageConfig` (``details`` = field errors) when
    invalid, :class:`StorageNotInstalled` for types whose client library is
    missing. Opening does no I/O: connections are made on first use.
    ``options`` are backend tuning knobs (timeouts) used by tests and probes.
    """
    configuration = dict(configuration or {})
    credentials = dict(credentials or {})
    errors = validate_config(type, configuration, credentials)
    if not errors:  # the network policy, again right before the backend connects
        errors = network_errors(type, configuration, credentials)
    if errors:
        raise InvalidStorageConfig(errors)
    return _FACTORIES[type](configuration, credentials, options)


def probe(
    type: str,
    configuration: Mapping[str, Any] | None,
    credentials: Mapping[str, Any] | None,
    **options: Any,
) -> ProbeResult:
    """Validate, open and probe in one call; configuration problems become a failed result.

    What "Test storage connection" endpoints call (api-layer.md, "Storage
    Management": ``POST /api/v1/storage/test``).
    """
    if type != "local":
        # Someone is waiting for the answer: a short retry, not the backup's patience.
        options.setdefault("retry", default_policy().quick())
    try:
        backend = open_backend(type, configuration, credentials, **options)
    except InvalidStorageConfig as exc:
        return ProbeResult(
            ok=False,
            message="Invalid storage configuration: "
            + "; ".join(f"{field}: {message}" for field, message in exc.details.items()),
            latency_ms=0,
            error_kind="invalid_config",
        )
    except StorageError as exc:
        return ProbeResult(ok=False, message=exc.message, latency_ms=0, error_kind="error")
    return backend.probe()


def _open_local(config: dict[str, Any], creds: dict[str, Any], options: dict[str, Any]):

    return LocalBackend(config, creds)


def _open_s3(config: dict[str, Any], creds: dict[str, Any], options: dict[str, Any]):

    return S3Backend(config, creds, storage_type="s3", **options)


def _open_minio(config: dict[str, Any], creds: dict[str, Any], options: dict[str, Any]):

    return S3Backend(config, creds, storage_type="minio", **options)


def _open_sftp(config: dict[str, Any], creds: dict[str, Any], options: dict[str, Any]):

    return SFTPBackend(config, creds, **options)


def _open_gcs(config: dict[str, Any], creds: dict[str, Any], options: dict[str, Any]):

    return open_gcs(config, creds, **options)


def _open_azure(config: dict[str, Any], creds: dict[str, Any], options: dict[str, Any]):

    return open_azure(config, creds, **options)


_FACTORIES: dict[str, Callable[[dict[str, Any], dict[str, Any], dict[str, Any]], StorageBackend]] = {
    "local": _open_local,
    "s3": _open_s3,
    "minio": _open_minio,
    "sftp": _open_sftp,
    "gcs": _open_gcs,
    "azure": _open_azure,
}
