"""From an event to messages: who gets it (routing), grouping of repeats, and each attempt.

``emit()`` calls :func:`event_committed` once per notifiable event, after its transaction
committed. That publishes the ``notification`` WebSocket event and, when the tenant has
channels or webhooks, queues ``audit.tasks.route_event``, which creates one ``Delivery``
per destination and queues ``audit.tasks.deliver`` for each. Nothing is sent in a request.

A delivery is attempted by the task; network errors, 5xx and 429 are retried with Celery's
exponential backoff (the wait is at least the receiver's ``Retry-After``) until
``NOTIFY_GIVE_UP_AFTER`` seconds after it was created; then it is ``failed`` (shown in the
API and the admin) and its destination counts a failure. A destination that keeps failing
is flagged (``failing_since``), never disabled.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery.utils.time import get_exponential_backoff_interval
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from backupplatform.celery import app
from backupplatform.isotime import utc_iso, utc_now_iso

from . import channels as channel_types
from . import webhooks as webhook_signing
from .events import DEFAULT_CHANNEL_EVENTS, EVENT_TYPES, GROUPED, event_type_for, level_rank
from .models import (
    AuditEvent,
    Delivery,
    DeliveryStatus,
    NotificationChannel,
    NotificationGroup,
    Webhook,
)
from .notices import Notice, build_notice
from .services import emit, publish

logger = logging.getLogger(__name__)

# Events shown as a ``notification`` on the tenant's sockets (db-backup-platform.md "WebSocket
# Events"): outcomes people watch for, not every configuration change.
SOCKET_EVENTS = frozenset(EVENT_TYPES) - {
    "backup.started",
    "backup.deleted",
    "backup.policy.created",
    "backup.policy.updated",
    "backup.policy.deleted",
    "restore.started",
}


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def group_window() -> timedelta:
    return timedelta(seconds=_setting("NOTIFY_GROUP_WINDOW", 3600))


def _send_task(name: str, args: list, countdown: float | None = None) -> None:

    app.send_task(name, args=args, countdown=countdown)


def _queue_after_commit(name: str, args: list, countdown: float | None = None) -> None:
    transaction.on_commit(lambda: _send_task(name, args, countdown))


# --- after an event -------------------------------------------------------------------------


def socket_notification(notice: Notice) -> dict[str, Any]:
    """The ``notification`` WebSocket event (the seed's shape plus what happened where)."""
    details = {**notice.data, "event": notice.event_type, "error": notice.error or None, "link": notice.link or None}
    return {
        "type": "notification",
        "level": notice.level,
        "event": notice.event_type,
        "title": notice.title,
        "message": notice.text,
        "details": details,
        "timestamp": notice.timestamp,
    }


def _has_destinations(tenant_id: int) -> bool:
    return (
        NotificationChannel.objects.filter(tenant_id=tenant_id, is_enabled=True).exists()
        or Webhook.objects.filter(tenant_id=tenant_id, is_active=True).exists()
    )


def event_committed(*, event_id: int, event_type: str) -> None:
    """Called once per notifiable event after its transaction committed (never raises)."""

    try:
        event = AuditEvent.objects.select_related("tenant").get(pk=event_id)
        if event_type in SOCKET_EVENTS:
            publish(tenant_id=event.tenant_id, event=socket_notification(build_notice(event, event_type)))
        if _has_destinations(event.tenant_id):
            _send_task("audit.tasks.route_event", [event_id])
    except Exception:  # telling people must never break what happened
        logger.exception("could not fan out audit event %s (%s)", event_id, event_type)


# --- routing ---------------------------------------------------------------------------------


def _channel_wants(channel: NotificationChannel, notice: Notice) -> bool:
    subscribed = channel.event_types or DEFAULT_CHANNEL_EVENTS
    if notice.event_type not in subscribed:
        return False
    if level_rank(notice.level) < level_rank(channel.min_level):
        return False
    return notice.wanted is not False


def delivery_for_channel(
    *, channel: NotificationChannel, notice: Notice, event: AuditEvent | None, status: str = DeliveryStatus.PENDING
) -> Delivery:
    message = channel_types.render(channel.type, notice, channel.config or {})
    return Delivery.objects.create(
        tenant_id=channel.tenant_id,
        channel=channel,
        event=event,
        event_type=notice.event_type,
        public_id=webhook_signing.new_delivery_id(),
        payload={"message": message, "notice": notice.as_dict()},
        status=status,
        give_up_at=timezone.now() + timedelta(seconds=_setting("NOTIFY_GIVE_UP_AFTER", 6 * 3600)),
    )


def delivery_for_webhook(*, webhook: Webhook, notice: Notice, event: AuditEvent | None) -> Delivery:
    public_id = webhook_signing.new_delivery_id()
    return Delivery.objects.create(
        tenant_id=webhook.tenant_id,
        webhook=webhook,
        event=event,
        event_type=notice.event_type,
        public_id=public_id,
        payload={"body": webhook_signing.body_for(notice, public_id)},
        give_up_at=timezone.now() + timedelta(seconds=_setting("NOTIFY_GIVE_UP_AFTER", 6 * 3600)),
    )


def _grouped(channel: NotificationChannel, notice: Notice) -> bool:
    """Count ``notice`` in its group's open window (then it is not sent now), or open one."""
    if notice.event_type not in GROUPED or not notice.group_key:
        return False
    now = timezone.now()
    group, _ = NotificationGroup.objects.select_for_update().get_or_create(
        channel=channel,
        event_type=notice.event_type,
        key=notice.group_key[:200],
        defaults={"tenant_id": channel.tenant_id, "window_ends_at": now},
    )
    if group.window_ends_at > now:
        group.suppressed += 1
        group.last_notice = notice.as_dict()
        group.save(update_fields=["suppressed", "last_notice"])
        return True
    if group.suppressed:
        _summary(group)  # the last window's summary had not gone out yet
    window = group_window()
    group.window_ends_at, group.first_at, group.suppressed = now + window, now, 0
    group.last_notice = notice.as_dict()
    group.save(update_fields=["window_ends_at", "first_at", "suppressed", "last_notice"])
    _queue_after_commit("audit.tasks.send_group_summary", [group.pk], countdown=window.total_seconds() + 1)
    return False


@transaction.atomic
def route_event(*, event_id: int) -> list[int]:
    """Create and queue the deliveries of one event; returns their ids."""
    event = AuditEvent.objects.select_related("tenant").filter(pk=event_id).first()
    if event is None or event.tenant_id is None:
        return []
    event_type = event_type_for(event.action, event.details or {}, event.resource_id)
    if event_type is None:
        return []
    notice = build_notice(event, event_type)
    created: list[Delivery] = []
    channels = NotificationChannel.objects.filter(tenant_id=event.tenant_id, is_enabled=True).order_by("id")
    for channel in channels:
        if not _channel_wants(channel, notice):
            continue
        if _grouped(channel, notice):
            delivery_for_channel(channel=channel, notice=notice, event=event, status=DeliveryStatus.SUPPRESSED)
            continue
        created.append(delivery_for_channel(channel=channel, notice=notice, event=event))
    for webhook in Webhook.objects.filter(tenant_id=event.tenant_id, is_active=True).order_by("id"):
        if event_type in (webhook.event_types or []):
            created.append(delivery_for_webhook(webhook=webhook, notice=notice, event=event))
    for delivery in created:
        _queue_after_commit("audit.tasks.deliver", [delivery.pk])
    return [d.pk for d in created]


# --- grouping summaries ------------------------------------------------------------------------


def _summary(group: NotificationGroup) -> Delivery | None:
    """Queue the summary of a group's suppressed events and reset its count (group locked)."""
    last = Notice(**{k: v for k, v in (group.last_notice or {}).items() if k in Notice.__dataclass_fields__})
    channel = NotificationChannel.objects.filter(pk=group.channel_id, is_enabled=True).first()
    count, since = group.suppressed, group.first_at
    group.suppressed = 0
    group.save(update_fields=["suppressed"])
    if channel is None or not count:
        return None
    when = utc_iso(since, micro=True) if since else "the last window"
    summary = Notice(
        event_type=last.event_type,
        level=last.level,
        title=f"Repeated {count} more time(s): {last.title}",
        text=(
            f"{last.title} happened {count} more time(s) since {when}; only the first was sent. "
            f"Latest occurrence at {last.timestamp}."
        ),
        tenant=last.tenant,
        timestamp=utc_now_iso(micro=True),
        error=last.error,
        link=last.link,
        facts={**last.facts, "Repeats": str(count)},
        data={**last.data, "repeats": count, "summary": True},
        group_key=last.group_key,
    )
    delivery = delivery_for_channel(channel=channel, notice=summary, event=None)
    _queue_after_commit("audit.tasks.deliver", [delivery.pk])
    return delivery


@transaction.atomic
def group_summary_send(*, group_id: int) -> int | None:
    """At the end of a group's window: one message that sums up what was held back."""
    group = NotificationGroup.objects.select_for_update().filter(pk=group_id).first()
    if group is None or group.window_ends_at > timezone.now() or not group.suppressed:
        return None
    delivery = _summary(group)
    return delivery.pk if delivery else None


def groups_flush() -> int:
    """Beat: summaries whose task was lost (worker down at the window's end)."""
    sent = 0
    for pk in NotificationGroup.objects.filter(window_ends_at__lte=timezone.now(), suppressed__gt=0).values_list(
        "pk", flat=True
    ):
        sent += group_summary_send(group_id=pk) is not None
    return sent


def deliveries_requeue(*, older_than: float = 300) -> int:
    """Beat: deliveries whose task message was lost (a broker restart) are queued again."""
    cutoff = timezone.now() - timedelta(seconds=older_than)
    stale = Delivery.objects.filter(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], created_at__lt=cutoff
    ).filter(next_attempt_at__isnull=True) | Delivery.objects.filter(
        status=DeliveryStatus.RETRYING, next_attempt_at__lt=cutoff
    )
    ids = list(stale.values_list("pk", flat=True)[:500])
    for pk in ids:
        _send_task("audit.tasks.deliver", [pk])
    return len(ids)


# --- attempts ----------------------------------------------------------------------------------


def _send(delivery: Delivery) -> channel_types.SendResult:
    if delivery.channel_id:
        channel = delivery.channel
        return channel_types.send(channel.type, channel.config or {}, delivery.payload["message"])
    webhook = delivery.webhook
    raw = webhook_signing.encode(delivery.payload["body"])
    headers = {
        "X-Webhook-Id": delivery.public_id,
        "X-Webhook-Event": delivery.event_type,
        **webhook_signing.sign(webhook.secret, raw),
    }
    return channel_types.http_post(webhook.url, body=raw, headers=headers)


def _destination_succeeded(delivery: Delivery, now) -> None:
    model = NotificationChannel if delivery.channel_id else Webhook
    model.objects.filter(pk=delivery.channel_id or delivery.webhook_id).update(
        consecutive_failures=0, failing_since=None, last_delivered_at=now
    )


def _destination_failed(delivery: Delivery, error: str, now) -> None:
    """Count a delivery given up on; flag the destination once it keeps failing."""

    model = NotificationChannel if delivery.channel_id else Webhook
    pk = delivery.channel_id or delivery.webhook_id
    model.objects.filter(pk=pk).update(consecutive_failures=F("consecutive_failures") + 1, last_error=error[:1000])
    threshold = int(_setting("NOTIFY_FAILING_AFTER", 3))
    flagged = model.objects.filter(pk=pk, failing_since__isnull=True, consecutive_failures__gte=threshold).update(
        failing_since=now
    )
    if flagged:
        destination = model.objects.select_related("tenant").get(pk=pk)
        kind = "notification_channel" if delivery.channel_id else "webhook"
        logger.warning("%s %s keeps failing: %s", kind, pk, error)
        emit(
            action=f"{kind}_failing",
            tenant=destination.tenant,
            resource_type=kind,
            resource_id=pk,
            details={"consecutive_failures": destination.consecutive_failures, "last_error": error[:500]},
        )


def retry_countdown(attempts: int, retry_after: float | None) -> float:
    """Celery's exponential backoff with full jitter, never shorter than ``Retry-After``."""
    backoff = get_exponential_backoff_interval(
        factor=int(_setting("NOTIFY_RETRY_BACKOFF", 30)),
        retries=max(0, attempts - 1),
        maximum=int(_setting("NOTIFY_RETRY_BACKOFF_MAX", 1800)),
        full_jitter=True,
    )
    floor = min(retry_after or 0.0, _setting("NOTIFY_RETRY_AFTER_MAX", 3600))
    return max(float(backoff), floor, 0.5)


def delivery_attempt(*, delivery_id: int) -> float | None:
    """One attempt of a delivery. Returns the seconds to wait before the next attempt, or
    ``None`` when the delivery is done (delivered, failed, or not pending any more)."""
    delivery = Delivery.objects.select_related("channel", "webhook").filter(pk=delivery_id).first()
    if delivery is None or delivery.status not in (DeliveryStatus.PENDING, DeliveryStatus.RETRYING):
        return None
    if (delivery.channel_id and not delivery.channel.is_enabled) or (
        delivery.webhook_id and not delivery.webhook.is_active
    ):
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.FAILED, last_error="the destination was disabled"
        )
        return None
    # Claim this attempt: a duplicate task message finds the count moved on and stops.
    if not Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts, status=delivery.status).update(
        attempts=F("attempts") + 1, next_attempt_at=None
    ):
        return None
    attempts = delivery.attempts + 1
    try:
        result = _send(delivery)
    except Exception as exc:  # a bug or an undecryptable secret: recorded, not retried
        logger.exception("delivery %s failed unexpectedly", delivery.pk)
        result = channel_types.SendResult(ok=False, detail=f"{type(exc).__name__}: {exc}"[:500])
    now = timezone.now()
    fields: dict[str, Any] = {"last_status_code": result.status_code, "last_error": "" if result.ok else result.detail}
    if result.ok:
        with transaction.atomic():  # whoever sees the delivery delivered sees its destination healthy
            Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.DELIVERED, delivered_at=now, **fields)
            _destination_succeeded(delivery, now)
        return None
    countdown = retry_countdown(attempts, result.retry_after) if result.transient else None
    if countdown is not None and delivery.give_up_at and now + timedelta(seconds=countdown) <= delivery.give_up_at:
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.RETRYING, next_attempt_at=now + timedelta(seconds=countdown), **fields
        )
        logger.info(
            "delivery %s attempt %d failed (%s); next in %.1f s", delivery.pk, attempts, result.detail, countdown
        )
        return countdown
    if result.transient:
        fields["last_error"] = f"gave up after {attempts} attempt(s): {result.detail}"[:1000]
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, **fields)
        _destination_failed(delivery, fields["last_error"], now)
    logger.warning("delivery %s failed for good: %s", delivery.pk, fields["last_error"])
    return None
