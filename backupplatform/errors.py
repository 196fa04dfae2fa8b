"""Domain errors raised by services (CONVENTIONS.md "Services and selectors").

Each carries an HTTP status, a code and details; every facade's exception handler turns
them into its own documented error body. Codes follow the seeds' vocabulary; a facade may
rename a code (``Facade.code_aliases``) where its seed uses another word for the same thing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class DomainError(Exception):
    status = 400
    code = "BAD_REQUEST"
    default_message = "The request cannot be carried out"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        self.message = message or self.default_message
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)


class FieldError(str):
    """A validation message that also says what kind of error it is, in the vocabulary of
    db-backup-platform.md's validation items (``type_error.integer``, ``value_error.missing``,
    ``value_error.extra``...). It is a ``str``: facades without error types show the message."""

    kind: str

    def __new__(cls, message: str, kind: str = "value_error") -> FieldError:
        obj = super().__new__(cls, message)
        obj.kind = kind
        return obj


class ValidationFailed(DomainError):
    """Invalid input; ``details`` is ``{field: [messages]}``. ``location`` says where the
    fields are: ``"body"`` (the default), ``"query"`` or ``"path"``."""

    status = 400
    code = "VALIDATION_ERROR"
    default_message = "Invalid request data"

    def __init__(self, message: str | None = None, *, location: str = "body", **kwargs: Any):
        super().__init__(message, **kwargs)
        self.location = location


class NotFound(DomainError):
    status = 404
    code = "NOT_FOUND"
    default_message = "Not found"


class Forbidden(DomainError):
    status = 403
    code = "FORBIDDEN"
    default_message = "You do not have permission to perform this action"


class FeatureNotAvailable(DomainError):
    status = 403
    code = "FEATURE_NOT_AVAILABLE"
    default_message = "Backup functionality requires dedicated plan"


class Conflict(DomainError):
    status = 409
    code = "CONFLICT"
    default_message = "The resource is in a state that does not allow this"


class TooManyOperations(DomainError):
    status = 429
    code = "TOO_MANY_OPERATIONS"
    default_message = "Too many concurrent operations"


class StorageUnavailable(DomainError):
    """A transient storage failure (connection refused, timeout, 5xx): worth a retry."""

    status = 503
    code = "STORAGE_UNAVAILABLE"
    default_message = "The storage backend cannot be reached"


class UpstreamError(DomainError):
    status = 502
    code = "UPSTREAM_ERROR"
    default_message = "An upstream service failed"


class StorageFull(DomainError):
    """A storage's quota would be exceeded (system-backup-recovery.rst ``STORAGE_FULL``)."""

    status = 507
    code = "STORAGE_FULL"
    default_message = "Storage quota exceeded"


@contextmanager
def fields_renamed(names: dict[str, str]) -> Iterator[None]:
    """Report the fields of a service's ``ValidationFailed`` under a facade's names
    (``{"schedule_time": "time"}``): services speak of model fields, each API of its own."""
    try:
        yield
    except ValidationFailed as exc:
        if isinstance(exc.details, dict):
            exc.details = {names.get(key, key): value for key, value in exc.details.items()}
        raise
