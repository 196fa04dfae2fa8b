"""Console facade (system-backup-recovery.rst): "Scheduled Backups" and "Cleanup Operations".

Schedules are the tenant's ``BackupJob`` rows named by their stable ``public_id``
(``schedule_id``). Saving goes through ``schedules.services.job_save``; the console only
updates schedules that exist (an unknown ``schedule_id`` is ``SCHEDULE_NOT_FOUND``).

Cleanup is two steps: an analysis (dry run) saved as a ``CleanupPlan`` whose id the
execute call must quote before the plan expires (1 hour); execute deletes exactly the
planned backups in an ``Operation`` of kind ``cleanup`` whose progress is at
``/cloud-integration/backup/cleanup/progress/{cleanup_id}``.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema

from backupplatform.errors import Forbidden, NotFound, fields_renamed
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import validated
from backupplatform.isotime import utc_iso
from schedules import selectors, services
from schedules.models import BackupJob
from tenants.models import Role, role_at_least

from .conventions import ConsoleView
from .serializers import (
    CleanupExecuteSerializer,
    CleanupProgressShape,
    CleanupSerializer,
    CleanupShape,
    CleanupStartedShape,
    ScheduleListShape,
    ScheduleSavedShape,
    ScheduleSerializer,
    ScheduleToggledShape,
    ScheduleToggleSerializer,
    ScheduleUpdateSerializer,
    cleanup_progress,
)

ALIASES = {
    "schedule_type": "frequency",
    "schedule_time": "time",
    "cron_expression": "cron",
    "storage": "destination",
    "application": "schedule_id",
}
# Console field -> model field.
FIELD_NAMES = (
    ("name", "name"),
    ("enabled", "enabled"),
    ("timezone", "timezone"),
    ("retention_count", "retention_count"),
    ("type", "backup_type"),
    ("auto_purge", "auto_purge"),
)
SCHEDULE_NAMES = (
    ("frequency", "schedule_type"),
    ("time", "schedule_time"),
    ("days_of_week", "days_of_week"),
    ("day_of_month", "day_of_month"),
    ("cron", "cron_expression"),
)


def _job(tenant, schedule_id: str) -> BackupJob | None:
    return selectors.job_list(tenant=tenant).filter(public_id=schedule_id).first()


def _job_or_404(tenant, schedule_id: str) -> BackupJob:
    job = _job(tenant, schedule_id)
    if job is None:
        raise NotFound("Schedule not found", code="SCHEDULE_NOT_FOUND", details={"schedule_id": schedule_id})
    return job


def _eta_text(seconds: float) -> str:
    if seconds < 60:
        return f"{max(1, int(seconds))} seconds"
    return f"{round(seconds / 60)} minutes"


class SchedulesView(ConsoleView):
    """All schedules of the tenant, for the console form (viewers)."""

    roles = {"GET": Role.VIEWER}

    @extend_schema(operation_id="console_schedules_list", responses={200: ScheduleListShape})
    def get(self, request):
        tenant = self.require_tenant()
        jobs = list(selectors.job_list(tenant=tenant).order_by("name", "id"))
        return respond({"schedules": [ScheduleSerializer(job).data for job in jobs], "total_schedules": len(jobs)})


class ScheduleUpdateView(ConsoleView):
    """Save an existing schedule (admins); returns its ``next_execution``.

    system-backup-recovery.rst "Update Schedule" saves the schedule the form was filled from
    (``GET /schedules``): an unknown ``schedule_id`` is a 404 ``SCHEDULE_NOT_FOUND``, never a
    new schedule made by accident. Schedules are created through the jobs API, a workspace
    backup policy or the admin (``schedules.services.job_save(create=True)``).
    """

    roles = {"POST": Role.ADMIN}

    @extend_schema(request=ScheduleUpdateSerializer, responses={200: ScheduleSavedShape})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(ScheduleUpdateSerializer, request.data)
        fields = {target: data[source] for source, target in FIELD_NAMES if source in data}
        schedule = {target: data[source] for source, target in SCHEDULE_NAMES if source in data}
        with fields_renamed(ALIASES):
            job, _ = services.job_save(
                tenant=tenant,
                actor=request.user,
                public_id=data["schedule_id"],
                schedule=schedule,
                storage_name=data.get("destination"),
                notifications=data.get("notifications"),
                **fields,
            )
        return respond(
            {
                "status": "updated",
                "schedule_id": job.public_id,
                "next_execution": ScheduleSerializer(job).data["next_execution"],
                "message": "Schedule updated successfully",
            }
        )


class ScheduleToggleView(ConsoleView):
    """Enable or disable a schedule (admins): beat's PeriodicTask follows in the same transaction."""

    roles = {"POST": Role.ADMIN}

    @extend_schema(request=ScheduleToggleSerializer, responses={200: ScheduleToggledShape})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(ScheduleToggleSerializer, request.data)
        job = services.job_toggle(job=_job_or_404(tenant, data["schedule_id"]), enabled=data["enabled"])
        return respond(
            {
                "status": "updated",
                "schedule_id": job.public_id,
                "enabled": job.enabled,
                "message": "Schedule enabled" if job.enabled else "Schedule disabled",
            }
        )


def _execute_body(op, plan) -> dict:
    progress_url = reverse("console-cleanup-progress", kwargs={"cleanup_id": op.public_id})
    count = len(plan.backup_ids)
    return {
        "status": "cleanup_started",
        "cleanup_id": op.public_id,
        "cleanup_plan_id": plan.public_id,
        "backups_to_remove": count,
        "estimated_space": plan.analysis.get("space_to_free", "0 B"),
        # Deleting is a metadata call per artifact; about half a second each is a fair guess.
        "estimated_duration": _eta_text(count * 0.5),
        "progress_url": progress_url,
    }


class CleanupView(ConsoleView):
    """Retention analysis (dry run) returning a plan id (operators); ``dry_run: false``
    analyses and executes at once (admins)."""

    roles = {"POST": Role.OPERATOR}

    @extend_schema(request=CleanupSerializer, responses={200: CleanupShape})
    def post(self, request):

        tenant = self.require_tenant()
        data = validated(CleanupSerializer, request.data)
        dry_run = data.get("dry_run", True)
        if not dry_run and not (request.user.is_superuser or role_at_least(request.role, Role.ADMIN)):
            raise Forbidden("Executing a cleanup needs the admin role")
        rules = selectors.rules_from_console(
            retention_policy=data.get("retention_policy"), max_age_days=data.get("max_age_days")
        )
        job = _job_or_404(tenant, data["schedule_id"]) if data.get("schedule_id") else None
        plan = services.cleanup_analyse(
            tenant=tenant,
            actor=request.user,
            job=job,
            rules=rules,
            storage_locations=data.get("storage_locations"),
            reason=data.get("reason", ""),
        )
        if not dry_run:
            op = services.cleanup_execute(plan=plan, actor=request.user)
            return respond(_execute_body(op, plan))
        analysis = {
            k: plan.analysis[k]
            for k in ("total_backups", "eligible_for_removal", "space_to_free", "backups_to_keep", "protected_backups")
        }
        return respond(
            {
                "status": "analyzed",
                "dry_run": True,
                "cleanup_plan_id": plan.public_id,
                "analysis": analysis,
                "backup_ids": plan.backup_ids,
                "expires_at": utc_iso(plan.expires_at, micro=True),
                "action_required": bool(plan.backup_ids),
                "confirm_action": "cleanup_execute",
            }
        )


class CleanupExecuteView(ConsoleView):
    """Execute an analysed plan (admins): exactly its backups, once, before it expires."""

    roles = {"POST": Role.ADMIN}

    @extend_schema(request=CleanupExecuteSerializer, responses={200: CleanupStartedShape})
    def post(self, request):
        tenant = self.require_tenant()
        data = validated(CleanupExecuteSerializer, request.data)
        plan = selectors.cleanup_plan_get(tenant=tenant, public_id=data["cleanup_plan_id"])
        op = services.cleanup_execute(
            plan=plan, actor=request.user, notify_on_completion=data.get("notify_on_completion", False)
        )
        return respond(_execute_body(op, plan))


class CleanupProgressView(ConsoleView):
    roles = {"GET": Role.VIEWER}

    @extend_schema(responses={200: CleanupProgressShape})
    def get(self, request, cleanup_id=None):
        op = selectors.cleanup_operation_get(tenant=self.require_tenant(), public_id=cleanup_id)
        return respond(cleanup_progress(op))
