"""What notifications say about the backups domain's rows (``audit.notices``): backups,
servers, restores, verifications and cleanups. Registered in ``BackupsConfig.ready``."""

from __future__ import annotations

from audit.events import EVENT_TYPES
from audit.models import AuditEvent
from audit.notices import Notice, admin_link, iso, notify_flag, register_notice_builder

from .models import Backup, Operation, Restore, Server, Verification


def _backup_notice(notice: Notice, event: AuditEvent, *, success: bool) -> None:
    backup = (
        Backup.objects.select_related("server", "application", "storage", "job")
        .filter(pk=event.resource_id if event.resource_type == "backup" else None)
        .first()
    )
    if backup is None and event.resource_type == "operation":
        op = (
            Operation.objects.select_related("backup__server", "backup__application", "backup__storage", "backup__job")
            .filter(public_id=event.resource_id)
            .first()
        )
        backup = op.backup if op else None
    if backup is None:
        return
    what = backup.database_name or (backup.application.name if backup.application else backup.name)
    where = f" on {backup.server.name}" if backup.server else ""
    job = backup.job
    notice.title = f"Backup {'succeeded' if success else 'failed'}: {what}{where}"
    notice.text = (
        f"The backup '{backup.name}' of {what}{where} "
        f"{'completed' if success else 'failed'} in workspace {notice.tenant}."
    )
    notice.error = notice.error or backup.error_message
    notice.facts.update(
        {
            k: v
            for k, v in {
                "Job": job.name if job else "",
                "Server": backup.server.name if backup.server else "",
                "Database": backup.database_name,
                "Application": backup.application.name if backup.application else "",
                "Storage": backup.storage.name if backup.storage else "",
                "Trigger": backup.trigger,
                "Started": iso(backup.started_at),
                "Finished": iso(backup.completed_at),
            }.items()
            if v
        }
    )
    if success and backup.stored_bytes:
        notice.facts["Size"] = f"{backup.stored_bytes} bytes"
    notice.data.update(
        {
            "backup_id": backup.pk,
            "backup_name": backup.name,
            "job_id": backup.job_id,
            "server_id": backup.server_id,
            "database": backup.database_name,
            "application_id": backup.application_id,
            "status": backup.status,
        }
    )
    notice.link = admin_link("backups.backup", backup.pk)
    notice.group_key = (
        f"job:{backup.job_id}"
        if backup.job_id
        else f"app:{backup.application_id}"
        if backup.application_id
        else f"db:{backup.server_id}:{backup.database_name}"
    )
    op = Operation.objects.filter(backup=backup, kind="backup").order_by("-id").only("details").first()
    options = (op.details or {}).get("options", {}) if op else {}
    notice.wanted = notify_flag(options, job, success=success)


def _server_notice(notice: Notice, event: AuditEvent, *, down: bool) -> None:
    server = Server.objects.filter(pk=event.resource_id).first()
    if server is None:
        return
    notice.title = f"Server {'down' if down else 'up'}: {server.name} ({server.host}:{server.port})"
    notice.text = (
        f"Server '{server.name}' is {'unreachable' if down else 'reachable again'} (workspace {notice.tenant})."
    )
    notice.error = str(event.details.get("message") or "") if down else ""
    notice.facts.update({"Server": server.name, "Address": f"{server.host}:{server.port}", "Type": server.type})
    notice.data.update({"server_id": server.pk, "health_status": server.health_status})
    notice.link = admin_link("backups.server", server.pk)
    notice.group_key = f"server:{server.pk}"


def _restore_notice(notice: Notice, event: AuditEvent, *, success: bool) -> None:
    restore = (
        Restore.objects.select_related("backup", "target_server")
        .filter(pk=event.resource_id if event.resource_type == "restore" else None)
        .first()
    )
    if restore is None:
        return
    target = restore.target_database or restore.target_path or "its original place"
    backup_name = restore.backup.name if restore.backup else "(deleted)"
    notice.title = f"Restore {'completed' if success else 'failed'}: {backup_name} -> {target}"
    notice.text = (
        f"The restore of backup '{backup_name}' into {target} "
        f"{'completed' if success else 'failed'} in workspace {notice.tenant}."
    )
    notice.error = notice.error or restore.error_message
    notice.facts.update(
        {
            k: v
            for k, v in {
                "Backup": backup_name,
                "Target": target,
                "Server": restore.target_server.name if restore.target_server else "",
            }.items()
            if v
        }
    )
    notice.data.update({"restore_id": restore.pk, "backup_id": restore.backup_id})
    notice.link = admin_link("backups.restore", restore.pk)
    notice.group_key = f"restore-backup:{restore.backup_id}"


def _verification_notice(notice: Notice, event: AuditEvent) -> None:
    verification = (
        Verification.objects.select_related("backup")
        .filter(pk=event.resource_id if event.resource_type == "verification" else None)
        .first()
    )
    if verification is None:
        return
    notice.title = f"Verification failed: {verification.backup.name}"
    notice.text = (
        f"Verification ({verification.test_type}) of backup '{verification.backup.name}' did not pass "
        f"in workspace {notice.tenant}."
    )
    notice.facts.update({"Backup": verification.backup.name, "Test": verification.test_type})
    notice.data.update({"verification_id": verification.pk, "backup_id": verification.backup_id})
    notice.link = admin_link("backups.verification", verification.pk)
    notice.group_key = f"verify:{verification.backup.job_id or verification.backup_id}"


def backup_notice(notice: Notice, event: AuditEvent) -> None:
    _backup_notice(notice, event, success=notice.event_type != "backup.failed")
    if notice.event_type in ("backup.started", "backup.deleted"):
        notice.title = f"{EVENT_TYPES[notice.event_type].label}: {notice.data.get('backup_name') or event.resource_id}"
        notice.wanted = None


def cleanup_notice(notice: Notice, event: AuditEvent) -> None:
    details = event.details or {}
    notice.title = f"{EVENT_TYPES[notice.event_type].label}: {details.get('name') or event.resource_id}"
    op = Operation.objects.filter(public_id=event.resource_id).only("details").first()
    # system-backup-recovery.rst "Execute Cleanup": ``notify_on_completion`` asks for it.
    notice.wanted = bool(op and (op.details or {}).get("notify_on_completion"))
    notice.text = (
        f"Cleanup removed {details.get('removed', 0)} backup(s), freeing "
        f"{details.get('space_freed_bytes', 0)} bytes, in workspace {notice.tenant}."
    )
    notice.group_key = f"{event.resource_type}:{event.resource_id}"


def register() -> None:
    register_notice_builder(("backup.failed", "backup.completed", "backup.started", "backup.deleted"), backup_notice)
    register_notice_builder(("server.down",), lambda n, e: _server_notice(n, e, down=True))
    register_notice_builder(("server.up",), lambda n, e: _server_notice(n, e, down=False))
    register_notice_builder(("restore.completed", "restore.started"), lambda n, e: _restore_notice(n, e, success=True))
    register_notice_builder(("restore.failed",), lambda n, e: _restore_notice(n, e, success=False))
    register_notice_builder(("verification.failed",), _verification_notice)
    register_notice_builder(("cleanup.completed",), cleanup_notice)
