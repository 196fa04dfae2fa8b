"""Pieces the four schedule facades share (platform schedules, jobs, workspace backup-policy,
console schedules): strict input fields and the job's computed schedule fields."""

from __future__ import annotations

from datetime import time
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from backupplatform.facades.serializers import StrictCharField, StrictIntegerField
from backupplatform.ids import parse_id
from schedules import selectors
from schedules.models import BackupJob


@extend_schema_field({"type": "string", "pattern": "^\\d{1,2}:\\d{2}$", "example": "02:00", "nullable": True})
class StrictTimeField(serializers.Field):
    """``"HH:MM"`` (24-hour clock) as a ``datetime.time``; shown as ``"HH:MM"``."""

    default_error_messages = {"invalid": "Use 'HH:MM' (24-hour clock)."}

    def to_internal_value(self, data: Any) -> time:
        if not isinstance(data, str):
            self.fail("invalid")
        parts = data.strip().split(":")
        # ASCII digits only: str.isdigit() also passes "³" (int() fails) and "٣" (int() reads 3).
        if len(parts) != 2 or not all(p.isascii() and p.isdigit() for p in parts) or len(parts[1]) != 2:
            self.fail("invalid")
        hour, minute = int(parts[0]), int(parts[1])
        if hour > 23 or minute > 59:
            self.fail("invalid")
        return time(hour, minute)

    def to_representation(self, value: time | None) -> str | None:
        return value.strftime("%H:%M") if value else None


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string", "pattern": "^\\d+$"}]})
class IdField(serializers.Field):
    """An id given as a number or a string of digits (the workspace seed shows string ids)."""

    default_error_messages = {"invalid": "A numeric id is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if parse_id(data) is not None:
            return parse_id(data)
        self.fail("invalid")

    def to_representation(self, value):
        return value


def weekday_list(**kwargs) -> serializers.ListField:
    """ISO weekdays, 1 = Monday ... 7 = Sunday (schedules/timing.py)."""
    return serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=7), allow_empty=False, max_length=7, **kwargs
    )


def next_run(job: BackupJob):
    """The job's next run (UTC, DST-correct in its timezone), ``None`` while disabled."""
    return selectors.job_next_run(job)


def iso(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value else None


class BackupTypeField(StrictCharField):
    """``backup_type``/``type``: only ``full`` (every artifact is a complete, self-contained dump)."""

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value != "full":
            raise serializers.ValidationError('Only "full" backups are supported.')
        return value
