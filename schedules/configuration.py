"""The schedules' part of the tenant's configuration document (``backups.services.config``):
``retention_policies`` and ``schedules`` (backup jobs, with their notification settings),
registered as sections in ``SchedulesConfig.ready``."""

from __future__ import annotations

import datetime as dt

from backupplatform.errors import ValidationFailed
from backups.models import Application, Server, Storage
from backups.services.config import ConfigSection, register_config_section
from tenants.models import Tenant

from . import services as svc
from .models import BackupJob, RetentionPolicy

POLICY_FIELDS = (
    "description",
    "keep_last_n",
    "keep_days",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "min_verified_kept",
)
JOB_FIELDS = (
    "name",
    "description",
    "database_name",
    "source_path",
    "components",
    "backup_type",
    "schedule_type",
    "cron_expression",
    "timezone",
    "days_of_week",
    "day_of_month",
    "retention_days",
    "retention_count",
    "retention",
    "auto_purge",
    "options",
    "notifications",
    "priority",
    "enabled",
)
JOB_REFERENCES = (
    ("server", Server),
    ("application", Application),
    ("storage", Storage),
    ("retention_policy", RetentionPolicy),
)


def export_policies(*, tenant: Tenant, secrets: str) -> list[dict]:
    return [
        {"name": p.name, **{f: getattr(p, f) for f in POLICY_FIELDS}}
        for p in RetentionPolicy.objects.filter(tenant=tenant).order_by("name")
    ]


def export_schedules(*, tenant: Tenant, secrets: str) -> list[dict]:
    jobs = (
        BackupJob.objects.filter(tenant=tenant)
        .select_related("server", "application", "storage", "retention_policy")
        .order_by("public_id")
    )
    return [
        {
            "schedule_id": j.public_id,
            **{f: getattr(j, f) for f in JOB_FIELDS},
            "schedule_time": j.schedule_time.strftime("%H:%M:%S") if j.schedule_time else None,
            "server": j.server.name if j.server else None,
            "application": j.application.name if j.application else None,
            "storage": j.storage.name if j.storage else None,
            "retention_policy": j.retention_policy.name if j.retention_policy else None,
        }
        for j in jobs
    ]


def apply_policies(tenant: Tenant, items: list[dict]) -> list[str]:
    notes = []
    current = {p.name: p for p in RetentionPolicy.objects.filter(tenant=tenant)}
    for item in items:
        fields = {f: item[f] for f in POLICY_FIELDS if f in item}
        policy = current.pop(item["name"], None)
        if policy is None:
            svc.retention_policy_create(tenant=tenant, name=item["name"], **fields)
            notes.append(f"retention policy created: {item['name']}")
        else:
            svc.retention_policy_update(policy=policy, **fields)
    for name, policy in current.items():
        svc.retention_policy_delete(policy=policy)
        notes.append(f"retention policy deleted: {name}")
    return notes


def apply_schedules(tenant: Tenant, items: list[dict]) -> list[str]:
    notes = []
    lookups = {ref: {row.name: row for row in model.objects.filter(tenant=tenant)} for ref, model in JOB_REFERENCES}
    current = {j.public_id: j for j in BackupJob.objects.filter(tenant=tenant)}
    wanted = {item["schedule_id"] for item in items}
    for public_id, job in list(current.items()):  # first, so names and applications are free
        if public_id not in wanted:
            svc.job_delete(job=job)
            notes.append(f"schedule deleted: {public_id}")
            del current[public_id]
    for item in items:
        fields = {f: item[f] for f in JOB_FIELDS if f in item}
        fields["schedule_time"] = dt.time.fromisoformat(item["schedule_time"]) if item.get("schedule_time") else None
        for ref, rows in lookups.items():
            name = item.get(ref)
            if name and name not in rows:
                raise ValidationFailed(
                    details={
                        f"schedules.{item['schedule_id']}.{ref}": [
                            f"No {ref.replace('_', ' ')} named '{name}' (restore that component too)."
                        ]
                    }
                )
            fields[ref] = rows.get(name) if name else None
        job = current.get(item["schedule_id"])
        if job is None:
            svc.job_create(tenant=tenant, public_id=item["schedule_id"], **fields)
            notes.append(f"schedule created: {item['schedule_id']}")
        else:
            svc.job_update(job=job, **fields)
    return notes


def _refs_exist(tenant: Tenant, item: dict) -> bool:
    for ref, model in JOB_REFERENCES:
        name = item.get(ref)
        if name and not model.objects.filter(tenant=tenant, name=name).exists():
            return False
    return True


def schedules_first_pass(tenant: Tenant, items: list[dict], chosen: list[str], modules: dict) -> list[str]:
    """Before the other components: drop the schedules the document no longer has and keep
    those whose references exist, so servers and storages they used may go (the second pass,
    in the apply order, completes them)."""
    return apply_schedules(tenant, [i for i in items if _refs_exist(tenant, i)])


def register() -> None:
    register_config_section(ConfigSection("retention_policies", export_policies, apply_policies))
    register_config_section(
        ConfigSection("schedules", export_schedules, apply_schedules, first_pass=schedules_first_pass)
    )
