"""Services of notification channels and webhooks (db-backup-platform.md "Notifications",
api-layer.md "Webhook support for events").

Audit details name what changed, never a configuration value: a channel's configuration
holds webhook URLs, tokens and SMTP passwords, and a webhook's secret is shown once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from backupplatform import netpolicy
from backupplatform.errors import ValidationFailed
from backupplatform.isotime import utc_iso

from . import channels as channel_types
from . import webhooks as webhook_signing
from .deliveries import delivery_for_channel
from .events import EVENT_TYPES
from .models import ChannelType, Delivery, DeliveryStatus, Level, NotificationChannel, Webhook
from .notices import test_notice
from .services import emit, stored_user

if TYPE_CHECKING:  # the audit app imports no other app of ours at run time
    from tenants.models import Tenant


def _check_event_types(event_types: Any, *, field: str = "event_types", allow_empty: bool = True) -> list[str]:
    if not isinstance(event_types, list) or not all(isinstance(e, str) for e in event_types):
        raise ValidationFailed(details={field: ["A list of event type names is required."]})
    unknown = sorted({e for e in event_types if e not in EVENT_TYPES})
    if unknown:
        raise ValidationFailed(
            details={field: [f"Unknown event type(s): {', '.join(unknown)[:300]}; known: {', '.join(EVENT_TYPES)}."]}
        )
    if not event_types and not allow_empty:
        raise ValidationFailed(details={field: ["Name at least one event type."]})
    return sorted(set(event_types), key=list(EVENT_TYPES).index)


def _check_name(tenant: Tenant, name: str, exclude_pk: int | None = None) -> None:
    qs = NotificationChannel.objects.filter(tenant=tenant, name=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed(details={"name": ["A channel with this name already exists."]})


@transaction.atomic
def channel_create(
    *,
    tenant: Tenant,
    name: str,
    type: str,
    config: dict,
    is_enabled: bool = True,
    event_types: list[str] | None = None,
    min_level: str = Level.INFO,
    actor: Any = None,
) -> NotificationChannel:
    """A channel; its configuration is validated for its type and checked against the
    network policy, then stored encrypted. No ``event_types`` means the failure events."""
    if type not in ChannelType.values:
        raise ValidationFailed(details={"type": [f"Must be one of: {', '.join(ChannelType.values)}."]})
    _check_name(tenant, name)
    clean = channel_types.config_validate(type, config)
    events = _check_event_types(event_types or [])
    channel = NotificationChannel.objects.create(
        tenant=tenant,
        name=name,
        type=type,
        config=clean,
        is_enabled=is_enabled,
        event_types=events,
        min_level=min_level,
        created_by=stored_user(actor),
    )
    emit(
        action="notification_channel_create",
        tenant=tenant,
        resource_type="notification_channel",
        resource_id=channel.pk,
        details={
            "name": name,
            "type": type,
            "config_keys": sorted(clean),
            "event_types": events,
            "min_level": min_level,
            "is_enabled": is_enabled,
        },
    )
    return channel


@transaction.atomic
def channel_update(*, channel: NotificationChannel, **changes: Any) -> NotificationChannel:
    """Partial update. In ``config``, keys left out keep their value (a secret need not be sent
    again), ``null`` removes one; a new ``type`` needs a complete ``config``."""
    changed: list[str] = []
    if "name" in changes and changes["name"] != channel.name:
        _check_name(channel.tenant, changes["name"], exclude_pk=channel.pk)
        channel.name = changes["name"]
        changed.append("name")
    new_type = changes.get("type", channel.type)
    if new_type not in ChannelType.values:
        raise ValidationFailed(details={"type": [f"Must be one of: {', '.join(ChannelType.values)}."]})
    if new_type != channel.type or "config" in changes:
        if new_type != channel.type and "config" not in changes:
            raise ValidationFailed(details={"config": ["A new type needs its whole configuration."]})
        current = None if new_type != channel.type else channel.config
        channel.config = channel_types.config_validate(new_type, changes["config"], current=current)
        changed.append("config")
        if new_type != channel.type:
            channel.type = new_type
            changed.append("type")
    if "event_types" in changes:
        channel.event_types = _check_event_types(changes["event_types"])
        changed.append("event_types")
    for field in ("is_enabled", "min_level"):
        if field in changes and getattr(channel, field) != changes[field]:
            setattr(channel, field, changes[field])
            changed.append(field)
    if "config" in changed or "is_enabled" in changed:
        # A fixed configuration (or re-enabling) starts over: the flag was about the old one.
        channel.consecutive_failures, channel.failing_since = 0, None
    channel.save()
    emit(
        action="notification_channel_update",
        tenant=channel.tenant,
        resource_type="notification_channel",
        resource_id=channel.pk,
        details={
            "changed_fields": changed,
            "config_keys": sorted(changes["config"]) if isinstance(changes.get("config"), dict) else [],
        },
    )
    return channel


@transaction.atomic
def channel_delete(*, channel: NotificationChannel) -> None:
    pk, tenant, name = channel.pk, channel.tenant, channel.name
    channel.delete()
    emit(
        action="notification_channel_delete",
        tenant=tenant,
        resource_type="notification_channel",
        resource_id=pk,
        details={"name": name},
    )


def channel_test(*, channel: NotificationChannel, message: str) -> tuple[channel_types.SendResult, Delivery]:
    """Send one message now, in this process, and report what the receiver answered (HTTP
    status or SMTP reply). Recorded as a delivery of event ``test``; never retried."""
    now = timezone.now()
    notice = test_notice(tenant_slug=channel.tenant.slug, message=message, timestamp=utc_iso(now, micro=True))
    delivery = delivery_for_channel(channel=channel, notice=notice, event=None)
    try:
        result = channel_types.send(channel.type, channel.config or {}, delivery.payload["message"])
    except netpolicy.OutboundRefused as exc:
        result = channel_types.SendResult(ok=False, detail=str(exc.details))
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.DELIVERED if result.ok else DeliveryStatus.FAILED,
        attempts=1,
        last_status_code=result.status_code,
        last_error="" if result.ok else result.detail,
        delivered_at=timezone.now() if result.ok else None,
    )
    delivery.refresh_from_db()
    emit(
        action="notification_test",
        tenant=channel.tenant,
        resource_type="notification_channel",
        resource_id=channel.pk,
        details={"success": result.ok, "status_code": result.status_code, "message": result.detail[:300]},
    )
    return result, delivery


# --- webhooks ------------------------------------------------------------------------------------


@transaction.atomic
def webhook_create(
    *, tenant: Tenant, url: str, event_types: list[str], description: str = "", actor: Any = None
) -> tuple[Webhook, str]:
    """Subscribe ``url``; returns the webhook and its signing secret (shown once)."""
    _, error = channel_types._check_value(channel_types.ConfigKey("url", "url"), url)
    if error:
        raise ValidationFailed(details={"url": [error]})
    netpolicy.check_url(url, field="url")
    events = _check_event_types(event_types, allow_empty=False)
    secret = webhook_signing.new_secret()
    webhook = Webhook.objects.create(
        tenant=tenant,
        url=url,
        description=description,
        event_types=events,
        secret=secret,
        created_by=stored_user(actor),
    )
    emit(
        action="webhook_create",
        tenant=tenant,
        resource_type="webhook",
        resource_id=webhook.pk,
        details={"url_host": webhook.url.split("/")[2], "event_types": events},
    )
    return webhook, secret


@transaction.atomic
def webhook_delete(*, webhook: Webhook) -> None:
    pk, tenant = webhook.pk, webhook.tenant
    webhook.delete()
    emit(action="webhook_delete", tenant=tenant, resource_type="webhook", resource_id=pk, details={})
