"""What notifications say about backup jobs (``audit.notices``): a policy's changes and a
missed scheduled run. Registered in ``SchedulesConfig.ready``."""

from __future__ import annotations

from audit.events import EVENT_TYPES
from audit.models import AuditEvent
from audit.notices import Notice, admin_link, register_notice_builder

from .models import BackupJob


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


def register() -> None:
    policy_events = tuple(t for t in EVENT_TYPES if t.startswith("backup.policy."))
    register_notice_builder((*policy_events, "schedule.missed"), _job_notice)
