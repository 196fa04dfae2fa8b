"""Reads of the audit log."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from backupplatform.errors import ValidationFailed
from backupplatform.ids import parse_id
from backupplatform.tenancy import scoped

from .models import AuditEvent


def _parse_bound(name: str, raw: str, *, end: bool) -> datetime:
    value = parse_datetime(raw)
    if value is None:
        day = parse_date(raw)
        if day is None:
            raise ValidationFailed(
                details={name: ["Use a date (YYYY-MM-DD) or an ISO 8601 date-time."]}, location="query"
            )
        value = datetime.combine(day, time.max if end else time.min)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    return value


def audit_event_list(*, tenant: Any, filters: dict[str, str]) -> QuerySet[AuditEvent]:
    """Events of ``tenant`` (every tenant's for ``ALL_TENANTS``), newest first, filtered as
    the seed documents."""
    qs = scoped(AuditEvent.objects.all(), tenant)
    if filters.get("user_id"):
        if parse_id(filters["user_id"]) is None:
            raise ValidationFailed(details={"user_id": ["A whole number is required."]}, location="query")
        qs = qs.filter(actor_id=parse_id(filters["user_id"]))
    if filters.get("action"):
        qs = qs.filter(action=filters["action"])
    if filters.get("resource_type"):
        qs = qs.filter(resource_type=filters["resource_type"])
    if filters.get("start_date"):
        qs = qs.filter(created_at__gte=_parse_bound("start_date", filters["start_date"], end=False))
    if filters.get("end_date"):
        qs = qs.filter(created_at__lte=_parse_bound("end_date", filters["end_date"], end=True))
    return qs.order_by("-created_at", "-id")


def channel_list(*, tenant: Any) -> QuerySet:
    """Notification channels of ``tenant`` (``ALL_TENANTS`` for every tenant's), by name."""
    from .models import NotificationChannel

    return scoped(NotificationChannel.objects.all(), tenant).order_by("name", "id")


def webhook_list(*, tenant: Any) -> QuerySet:
    from .models import Webhook

    return scoped(Webhook.objects.all(), tenant).order_by("-created_at", "-id")


def recent_deliveries(*, channel: Any = None, webhook: Any = None, limit: int = 20) -> list:
    """The latest deliveries of one channel or webhook, newest first."""
    from .models import Delivery

    qs = Delivery.objects.filter(channel=channel) if channel is not None else Delivery.objects.filter(webhook=webhook)
    return list(qs.order_by("-created_at", "-id")[:limit])
