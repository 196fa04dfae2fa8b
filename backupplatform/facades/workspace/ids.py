"""The workspace API's ids, written as its document writes them: ``"storage-123"``,
``"app-456"``, ``"backup-456"``, ``"restore-789"``, ``"policy-123"`` (the number is the row's
id, the same in every facade). Requests may give either form: ``storage-123`` or ``123``.

Answers get these forms in one place, the facade's envelope (``public_ids``): every
``<kind>_id`` key below becomes the string form, and each serializer writes its own ``id``.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backupplatform.ids import parse_id

PREFIXES = {"storage": "storage", "application": "app", "backup": "backup", "restore": "restore", "policy": "policy"}

# Keys of answers (and error details) that hold an id of a kind above.
ID_KEYS = {
    "storage_id": "storage",
    "application_id": "application",
    "backup_id": "backup",
    "restore_id": "restore",
    "policy_id": "policy",
    "target_application": "application",
    "current_backup_id": "backup",
}
# Keys that hold a list of such ids.
ID_LIST_KEYS = {"policy_ids": "policy", "backup_ids": "backup"}


def public(kind: str, pk: Any) -> Any:
    """``"storage-12"`` for storage 12; anything that is not a number is left as it is."""
    if isinstance(pk, bool) or not isinstance(pk, int):
        return pk
    return f"{PREFIXES[kind]}-{pk}"


def parse(kind: str, value: Any) -> int | None:
    """The row id in ``"storage-12"`` or ``12`` (``None`` when it is neither)."""
    if isinstance(value, str) and value.startswith(f"{PREFIXES[kind]}-"):
        value = value[len(PREFIXES[kind]) + 1 :]
    return parse_id(value)


def public_ids(data: Any) -> Any:
    """``data`` with the ids under ``ID_KEYS`` in their public form (recursively)."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key in ID_KEYS and not isinstance(value, dict | list):
                out[key] = public(ID_KEYS[key], value)
            elif key in ID_LIST_KEYS and isinstance(value, list):
                out[key] = [public(ID_LIST_KEYS[key], item) for item in value]
            else:
                out[key] = public_ids(value)
        return out
    if isinstance(data, list):
        return [public_ids(item) for item in data]
    return data


@extend_schema_field(OpenApiTypes.STR)
class PublicIdField(serializers.Field):
    """A read-only id in the public form (``source`` gives the number)."""

    def __init__(self, kind: str, **kwargs: Any):
        self.kind = kind
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        return public(self.kind, value)


@extend_schema_field({"oneOf": [{"type": "string", "example": "storage-123"}, {"type": "integer"}]})
class IdInput(serializers.Field):
    """An id given in a request body: ``"storage-12"`` or ``12``; ``validated_data`` holds 12."""

    default_error_messages = {"invalid": "Not a valid {kind} id: use '{example}' or its number."}

    def __init__(self, kind: str, **kwargs: Any):
        self.kind = kind
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        pk = parse(self.kind, data)
        if pk is None:
            self.fail("invalid", kind=self.kind, example=f"{PREFIXES[self.kind]}-123")
        return pk

    def to_representation(self, value: Any) -> Any:
        return public(self.kind, value)
