"""Reads of the audit log."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from backupplatform.filtering import DateBoundFilter, IdFilter, QueryFilterSet
from backupplatform.tenancy import scoped

from .models import AuditEvent, Delivery, NotificationChannel, Webhook


class AuditEventFilter(QueryFilterSet):
    user_id = IdFilter(field_name="actor_id")
    action = django_filters.CharFilter(field_name="action")
    resource_type = django_filters.CharFilter(field_name="resource_type")
    start_date = DateBoundFilter(field_name="created_at", lookup_expr="gte")
    end_date = DateBoundFilter(field_name="created_at", lookup_expr="lte")

    class Meta:
        model = AuditEvent
        fields = ["user_id", "action", "resource_type", "start_date", "end_date"]


def audit_event_list(*, tenant: Any, filters: dict[str, str]) -> QuerySet[AuditEvent]:
    """Events of ``tenant`` (every tenant's for ``ALL_TENANTS``), newest first, filtered as
    the seed documents."""
    qs = scoped(AuditEvent.objects.all(), tenant)
    return AuditEventFilter.apply(filters, qs).order_by("-created_at", "-id")


def channel_list(*, tenant: Any) -> QuerySet:
    """Notification channels of ``tenant`` (``ALL_TENANTS`` for every tenant's), by name."""

    return scoped(NotificationChannel.objects.all(), tenant).order_by("name", "id")


def webhook_list(*, tenant: Any) -> QuerySet:

    return scoped(Webhook.objects.all(), tenant).order_by("-created_at", "-id")


def recent_deliveries(*, channel: Any = None, webhook: Any = None, limit: int = 20) -> list:
    """The latest deliveries of one channel or webhook, newest first."""

    qs = Delivery.objects.filter(channel=channel) if channel is not None else Delivery.objects.filter(webhook=webhook)
    return list(qs.order_by("-created_at", "-id")[:limit])
