"""Errors raised by the storage backends.

Every error carries a stable ``code`` (what a facade's exception handler maps
to its own error body), a human ``message`` and optional ``details``. Messages
name the bucket, host or path involved but never a secret: credentials are
never interpolated into them.

Only :class:`StorageUnavailable` is transient (connection refused, timeout,
5xx): it is the one Celery tasks may retry (``autoretry_for``). Everything else
needs a human to change the configuration first.
"""

from __future__ import annotations

from typing import Any


class StorageError(Exception):
    """Base class of every storage failure."""

    code = "STORAGE_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message


class StorageUnavailable(StorageError):
    """Transient failure: connection refused, timeout, DNS, 5xx. Worth a retry."""

    code = "STORAGE_UNAVAILABLE"


class StorageAuthError(StorageError):
    """The storage rejected the credentials or denied the operation."""

    code = "STORAGE_AUTH_FAILED"


class StorageNotFound(StorageError):
    """The bucket, container, directory or object does not exist."""

    code = "STORAGE_NOT_FOUND"


class InvalidStorageConfig(StorageError, ValueError):
    """The configuration failed validation; ``details`` holds field-level errors.

    Matches workspace-backup-api.md, "Error Responses": ``INVALID_STORAGE_CONFIG``.
    """

    code = "INVALID_STORAGE_CONFIG"

    def __init__(self, details: dict[str, str]) -> None:
        super().__init__("Invalid storage configuration", details=details)


class InvalidObjectName(StorageError, ValueError):
    """An object name is empty, absolute or escapes the storage root (``..``)."""

    code = "INVALID_OBJECT_NAME"


class StorageNotInstalled(StorageError):
    """The client library a storage type needs is not installed.

    Deliberately *not* a :class:`StorageUnavailable`: retrying cannot help.
    """

    code = "STORAGE_NOT_INSTALLED"
