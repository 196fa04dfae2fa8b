"""What notifications say about backup jobs (``audit.notices``): a policy's changes and a
missed scheduled run. Registered in ``SchedulesConfig.ready``."""

from __future__ import annotations

from audit.events import EVENT_TYPES
from audit.models import AuditEvent
from audit.notices import Notice, admin_link, iso, notify_flag, register_notice_builder

from .models import BackupJob, Drill


def _job_notice(notice: Notice, event: AuditEvent) -> None:
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


def _drill_notice(notice: Notice, event: AuditEvent) -> None:
    """A failed restore drill: which job, which backup, what failed; the job's ``on_failure``
    switch applies as for its failed backups."""
    drill = (
        Drill.objects.select_related("job")
        .filter(pk=event.resource_id if event.resource_type == "drill" else None)
        .first()
    )
    if drill is None:
        return
    name = drill.job_name or str(drill.job_id)
    notice.title = f"Restore drill failed: {name}"
    notice.text = (
        f"The restore drill of job '{name}' (backup {drill.backup_ref or 'none'}) failed in workspace {notice.tenant}."
    )
    notice.error = drill.error_message
    failed = [a for a in drill.assertions if not a.get("passed")]
    notice.facts.update(
        {
            k: v
            for k, v in {
                "Job": name,
                "Backup": str(drill.backup_ref or ""),
                "Started": iso(drill.started_at),
                "Time to restore": f"{drill.rto_seconds:.1f} s" if drill.rto_seconds is not None else "",
                "Failed assertions": str(len(failed)) if failed else "",
            }.items()
            if v
        }
    )
    notice.data.update({"drill_id": drill.pk, "job_id": drill.job_id, "backup_id": drill.backup_ref})
    notice.link = admin_link("schedules.drill", drill.pk)
    notice.group_key = f"drill:{drill.job_id}"
    notice.wanted = notify_flag({}, drill.job, success=False) if drill.job else None


def register() -> None:
    policy_events = tuple(t for t in EVENT_TYPES if t.startswith("backup.policy."))
    register_notice_builder((*policy_events, "schedule.missed"), _job_notice)
    register_notice_builder(("drill.failed",), _drill_notice)
