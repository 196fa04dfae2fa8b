"""What a notification says: built once per event from the audit row and the rows it names.

A notice tells what happened, where (tenant, job, server, database, storage), when, the
error text, and links to the object's admin page (``PUBLIC_BASE_URL`` + the admin URL). It is
plain data (JSON), so it can be stored on a delivery and rendered by any channel type.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from backupplatform.isotime import utc_iso

from .events import EVENT_TYPES
from .models import AuditEvent

logger = logging.getLogger(__name__)


@dataclass
class Notice:
    event_type: str
    level: str
    title: str
    text: str
    tenant: str
    timestamp: str
    error: str = ""
    link: str = ""
    # Facts shown as fields (``{"Job": "nightly", "Database": "shop"}``).
    facts: dict[str, str] = field(default_factory=dict)
    # Machine-readable ids for webhooks and the WebSocket (``backup_id``, ``job_id``...).
    data: dict[str, Any] = field(default_factory=dict)
    # Repeated events with the same key are grouped (one message per window).
    group_key: str = ""
    # Job-level notification flags that apply ({"on_failure": bool, ...} or None).
    wanted: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def admin_link(model_label: str, pk: Any) -> str:
    """Absolute URL of an object's admin page (``PUBLIC_BASE_URL``), or ``""``."""
    if pk in (None, ""):
        return ""
    try:
        path = reverse(f"admin:{model_label.replace('.', '_')}_change", args=[pk])
    except NoReverseMatch:
        return ""
    base = (getattr(settings, "PUBLIC_BASE_URL", "") or "").rstrip("/")
    return f"{base}{path}"


def iso(value) -> str:
    return utc_iso(value, micro=True) or ""


# Event type -> the function that fills its notice from the rows the event names. The apps
# that own those rows register them in their ``AppConfig.ready`` (the audit app imports no
# other app); an event without one gets the generic notice below.
NoticeBuilder = Callable[[Notice, AuditEvent], None]
NOTICE_BUILDERS: dict[str, NoticeBuilder] = {}


def register_notice_builder(event_types: tuple[str, ...], builder: NoticeBuilder) -> None:
    for event_type in event_types:
        NOTICE_BUILDERS[event_type] = builder


def notify_flag(options: dict, job: Any, *, success: bool) -> bool | None:
    """Whether a run's outcome should reach people.

    Jobs API ``notify`` on a manual run wins; then the job's ``on_success``/``on_failure``
    (db-backup-platform.md schedules, console ``notifications``), whose defaults are failure
    yes, success no; a backup without a job follows the channels' subscriptions (``None``).
    """
    if isinstance(options, dict) and isinstance(options.get("notify"), bool):
        return options["notify"]
    if job is None:
        return None
    flags = getattr(job, "notifications", None) or {}
    key = "on_success" if success else "on_failure"
    return bool(flags.get(key, not success))


def _generic_notice(notice: Notice, event: AuditEvent) -> None:
    details = event.details or {}
    label = EVENT_TYPES[notice.event_type].label
    subject = details.get("name") or details.get("message") or f"{event.resource_type} {event.resource_id}".strip()
    notice.title = f"{label}: {subject}"
    notice.text = f"{label} in workspace {notice.tenant}."
    if notice.event_type == "storage.alert":
        if event.action == "cleanup_complete":
            notice.text = (
                f"Cleanup could not delete {details.get('failed')} backup(s) from storage in workspace {notice.tenant}."
            )
        else:
            notice.error = str(details.get("message") or "")
        if event.resource_type == "storage":
            notice.link = admin_link("backups.storage", event.resource_id)
    elif notice.event_type == "acronis.disconnected":
        notice.title = "Acronis disconnected"
        notice.text = (
            f"The platform cannot reach the Acronis Cyber Protect Cloud of workspace {notice.tenant}; "
            "Acronis data and alerts are stale until it can."
        )
    elif notice.event_type == "acronis.backup_error":
        notice.title = f"Acronis backup failed on agent {event.resource_id or '(unknown)'}"
        notice.text = (
            f"An Acronis backup activity ({details.get('backup_id', '')}) failed in workspace {notice.tenant}."
        )
        notice.facts["Agent"] = str(event.resource_id)
    notice.error = notice.error or str(details.get("error") or "")
    notice.group_key = f"{event.resource_type}:{event.resource_id}"


def build_notice(event: AuditEvent, event_type: str) -> Notice:
    """The notice of ``event`` (an event of a type in ``EVENT_TYPES``)."""
    kind = EVENT_TYPES[event_type]
    details = event.details or {}
    notice = Notice(
        event_type=event_type,
        level=kind.level,
        title=kind.label,
        text=kind.label,
        tenant=event.tenant.slug if event.tenant_id else "",
        timestamp=iso(event.created_at),
        error=str(details.get("error") or ""),
        data={
            "audit_event_id": event.pk,
            "action": event.action,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
        },
    )
    try:
        builder = NOTICE_BUILDERS.get(event_type)
        if builder is not None:
            builder(notice, event)
        else:
            _generic_notice(notice, event)
    except Exception:  # a notice with less detail is better than none
        logger.exception("could not describe %s for its notification", event)
    if not notice.error and event_type.endswith((".failed", ".down", ".backup_error", ".disconnected")):
        notice.error = str(details.get("error") or details.get("message") or "")
    return notice


def test_notice(*, tenant_slug: str, message: str, timestamp: str) -> Notice:
    """The notice sent by ``POST /notifications/test``."""
    return Notice(
        event_type="test",
        level="info",
        title="Test notification",
        text=message,
        tenant=tenant_slug,
        timestamp=timestamp,
    )


test_notice.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
