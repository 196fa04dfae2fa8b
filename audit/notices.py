"""What a notification says: built once per event from the audit row and the rows it names.

A notice tells what happened, where (tenant, job, server, database, storage), when, the
error text, and links to the object's admin page (``PUBLIC_BASE_URL`` + the admin URL). It is
plain data (JSON), so it can be stored on a delivery and rendered by any channel type.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

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


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


def _notify_flag(options: dict, job, *, success: bool) -> bool | None:
    """Whether this run's outcome should reach people.

    Jobs API ``notify`` on a manual run wins; then the job's ``on_success``/``on_failure``
    (db-backup-platform.md schedules, console ``notifications``), whose defaults are failure
    yes, success no; a backup without a job follows the channels' subscriptions (``None``).
    """
    if isinstance(options, dict) and isinstance(options.get("notify"), bool):
        return options["notify"]
    if job is None:
        return None
    flags = job.notifications or {}
    key = "on_success" if success else "on_failure"
    return bool(flags.get(key, not success))


def _backup_notice(notice: Notice, event: AuditEvent, *, success: bool) -> None:
    from backups.models import Backup, Operation

    backup = (Backup.objects.select_related("server", "application", "storage", "job")
              .filter(pk=event.resource_id if event.resource_type == "backup" else None).first())
    if backup is None and event.resource_type == "operation":
        op = Operation.objects.select_related("backup__server", "backup__application", "backup__storage",
                                              "backup__job").filter(public_id=event.resource_id).first()
        backup = op.backup if op else None
    if backup is None:
        return
    what = backup.database_name or (backup.application.name if backup.application else backup.name)
    where = f" on {backup.server.name}" if backup.server else ""
    job = backup.job
    notice.title = f"Backup {'succeeded' if success else 'failed'}: {what}{where}"
    notice.text = (f"The backup '{backup.name}' of {what}{where} "
                   f"{'completed' if success else 'failed'} in workspace {notice.tenant}.")
    notice.error = notice.error or backup.error_message
    notice.facts.update({k: v for k, v in {
        "Job": job.name if job else "", "Server": backup.server.name if backup.server else "",
        "Database": backup.database_name, "Application": backup.application.name if backup.application else "",
        "Storage": backup.storage.name if backup.storage else "", "Trigger": backup.trigger,
        "Started": _iso(backup.started_at), "Finished": _iso(backup.completed_at),
    }.items() if v})
    if success and backup.stored_bytes:
        notice.facts["Size"] = f"{backup.stored_bytes} bytes"
    notice.data.update({"backup_id": backup.pk, "backup_name": backup.name, "job_id": backup.job_id,
                        "server_id": backup.server_id, "database": backup.database_name,
                        "application_id": backup.application_id, "status": backup.status})
    notice.link = admin_link("backups.backup", backup.pk)
    notice.group_key = (f"job:{backup.job_id}" if backup.job_id else
                        f"app:{backup.application_id}" if backup.application_id else
                        f"db:{backup.server_id}:{backup.database_name}")
    op = Operation.objects.filter(backup=backup, kind="backup").order_by("-id").only("details").first()
    options = (op.details or {}).get("options", {}) if op else {}
    notice.wanted = _notify_flag(options, job, success=success)


def _server_notice(notice: Notice, event: AuditEvent, *, down: bool) -> None:
    from backups.models import Server

    server = Server.objects.filter(pk=event.resource_id).first()
    if server is None:
        return
    notice.title = f"Server {'down' if down else 'up'}: {server.name} ({server.host}:{server.port})"
    notice.text = (f"Server '{server.name}' is {'unreachable' if down else 'reachable again'} "
                   f"(workspace {notice.tenant}).")
    notice.error = str(event.details.get("message") or "") if down else ""
    notice.facts.update({"Server": server.name, "Address": f"{server.host}:{server.port}", "Type": server.type})
    notice.data.update({"server_id": server.pk, "health_status": server.health_status})
    notice.link = admin_link("backups.server", server.pk)
    notice.group_key = f"server:{server.pk}"


def _restore_notice(notice: Notice, event: AuditEvent, *, success: bool) -> None:
    from backups.models import Restore

    restore = Restore.objects.select_related("backup", "target_server").filter(
        pk=event.resource_id if event.resource_type == "restore" else None).first()
    if restore is None:
        return
    target = restore.target_database or restore.target_path or "its original place"
    backup_name = restore.backup.name if restore.backup else "(deleted)"
    notice.title = f"Restore {'completed' if success else 'failed'}: {backup_name} -> {target}"
    notice.text = (f"The restore of backup '{backup_name}' into {target} "
                   f"{'completed' if success else 'failed'} in workspace {notice.tenant}.")
    notice.error = notice.error or restore.error_message
    notice.facts.update({k: v for k, v in {"Backup": backup_name, "Target": target,
                                           "Server": restore.target_server.name if restore.target_server else ""}
                         .items() if v})
    notice.data.update({"restore_id": restore.pk, "backup_id": restore.backup_id})
    notice.link = admin_link("backups.restore", restore.pk)
    notice.group_key = f"restore-backup:{restore.backup_id}"


def _verification_notice(notice: Notice, event: AuditEvent) -> None:
    from backups.models import Verification

    verification = Verification.objects.select_related("backup").filter(
        pk=event.resource_id if event.resource_type == "verification" else None).first()
    if verification is None:
        return
    notice.title = f"Verification failed: {verification.backup.name}"
    notice.text = (f"Verification ({verification.test_type}) of backup '{verification.backup.name}' did not pass "
                   f"in workspace {notice.tenant}.")
    notice.facts.update({"Backup": verification.backup.name, "Test": verification.test_type})
    notice.data.update({"verification_id": verification.pk, "backup_id": verification.backup_id})
    notice.link = admin_link("backups.verification", verification.pk)
    notice.group_key = f"verify:{verification.backup.job_id or verification.backup_id}"


def _job_notice(notice: Notice, event: AuditEvent) -> None:
    from schedules.models import BackupJob

    job = BackupJob.objects.filter(pk=event.resource_id if event.resource_type == "backup_job" else None).first()
    name = job.name if job else event.details.get("name", event.resource_id)
    if notice.event_type == "schedule.missed":
        notice.title = f"Scheduled run missed: {name}"
        notice.text = f"The scheduled run of job '{name}' did not start: {event.details.get('reason', '')}."
        notice.error = str(event.details.get("reason") or "")
    else:
        notice.title = f"{EVENT_TYPES[notice.event_type].label}: {name}"
        notice.text = f"{EVENT_TYPES[notice.event_type].label}: '{name}' in workspace {notice.tenant}."
    notice.facts["Job"] = str(name)
    notice.data["job_id"] = job.pk if job else event.resource_id
    notice.link = admin_link("schedules.backupjob", job.pk) if job else ""
    notice.group_key = f"job:{event.resource_id}"


def _generic_notice(notice: Notice, event: AuditEvent) -> None:
    details = event.details or {}
    label = EVENT_TYPES[notice.event_type].label
    subject = details.get("name") or details.get("message") or f"{event.resource_type} {event.resource_id}".strip()
    notice.title = f"{label}: {subject}"
    notice.text = f"{label} in workspace {notice.tenant}."
    if notice.event_type == "cleanup.completed":
        from backups.models import Operation

        op = Operation.objects.filter(public_id=event.resource_id).only("details").first()
        # system-backup-recovery.rst "Execute Cleanup": ``notify_on_completion`` asks for it.
        notice.wanted = bool(op and (op.details or {}).get("notify_on_completion"))
        notice.text = (f"Cleanup removed {details.get('removed', 0)} backup(s), freeing "
                       f"{details.get('space_freed_bytes', 0)} bytes, in workspace {notice.tenant}.")
    elif notice.event_type == "storage.alert":
        if event.action == "cleanup_complete":
            notice.text = (f"Cleanup could not delete {details.get('failed')} backup(s) from storage "
                           f"in workspace {notice.tenant}.")
        else:
            notice.error = str(details.get("message") or "")
        if event.resource_type == "storage":
            notice.link = admin_link("backups.storage", event.resource_id)
    elif notice.event_type == "acronis.disconnected":
        notice.title = "Acronis disconnected"
        notice.text = (f"The platform cannot reach the Acronis Cyber Protect Cloud of workspace {notice.tenant}; "
                       "Acronis data and alerts are stale until it can.")
    elif notice.event_type == "acronis.backup_error":
        notice.title = f"Acronis backup failed on agent {event.resource_id or '(unknown)'}"
        notice.text = f"An Acronis backup activity ({details.get('backup_id', '')}) failed in workspace {notice.tenant}."
        notice.facts["Agent"] = str(event.resource_id)
    notice.error = notice.error or str(details.get("error") or "")
    notice.group_key = f"{event.resource_type}:{event.resource_id}"


def build_notice(event: AuditEvent, event_type: str) -> Notice:
    """The notice of ``event`` (an event of a type in ``EVENT_TYPES``)."""
    kind = EVENT_TYPES[event_type]
    details = event.details or {}
    notice = Notice(event_type=event_type, level=kind.level, title=kind.label, text=kind.label,
                    tenant=event.tenant.slug if event.tenant_id else "", timestamp=_iso(event.created_at),
                    error=str(details.get("error") or ""),
                    data={"audit_event_id": event.pk, "action": event.action,
                          "resource_type": event.resource_type, "resource_id": event.resource_id})
    try:
        if event_type in ("backup.failed", "backup.completed", "backup.started", "backup.deleted"):
            _backup_notice(notice, event, success=event_type != "backup.failed")
            if event_type in ("backup.started", "backup.deleted"):
                notice.title = f"{kind.label}: {notice.data.get('backup_name') or event.resource_id}"
                notice.wanted = None
        elif event_type in ("server.down", "server.up"):
            _server_notice(notice, event, down=event_type == "server.down")
        elif event_type in ("restore.completed", "restore.failed", "restore.started"):
            _restore_notice(notice, event, success=event_type != "restore.failed")
        elif event_type == "verification.failed":
            _verification_notice(notice, event)
        elif event_type.startswith("backup.policy.") or event_type == "schedule.missed":
            _job_notice(notice, event)
        else:
            _generic_notice(notice, event)
    except Exception:  # a notice with less detail is better than none
        logger.exception("could not describe %s for its notification", event)
    if not notice.error and event_type.endswith((".failed", ".down", ".backup_error", ".disconnected")):
        notice.error = str(details.get("error") or details.get("message") or "")
    return notice


def test_notice(*, tenant_slug: str, message: str, timestamp: str) -> Notice:
    """The notice sent by ``POST /notifications/test``."""
    return Notice(event_type="test", level="info", title="Test notification", text=message,
                  tenant=tenant_slug, timestamp=timestamp)


test_notice.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
