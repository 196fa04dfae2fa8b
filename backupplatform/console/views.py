"""The console's pages: overview, back up now (server with its database picker, or an
application), the restore wizard, verify, download and a live operation page.

Every action calls the same service as the APIs (``backup_start``, ``restore_start``,
``verification_start``, ``backup_download_stream``); a service error lands on the form
field it names, in words. Another tenant's row is a 404.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpResponseRedirect, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from backupplatform import humanize
from backupplatform.admin_forms import add_service_errors
from backupplatform.errors import DomainError
from backups import services as backup_services
from backups.models import (
    Application,
    Backup,
    BackupStatus,
    Operation,
    OperationKind,
    Restore,
    Server,
    Storage,
    Verification,
)
from backups.services.backups import backup_start
from backups.services.downloads import backup_download_stream
from backups.services.restore_options import MASKING_RULES
from backups.services.restores import restore_start
from backups.services.verifications import TEST_TYPES, verification_start
from schedules.models import BackupJob
from schedules.services import job_run
from schedules.timing import cron_next_runs, frequency_to_cron, validate_cron, validate_timezone
from tenants.models import Tenant
from tenants.scoping import admin_tenant_ids

from .overview import chart, overview

MASK_ROWS = 5


def visible_tenants(request) -> list[Tenant]:
    ids = admin_tenant_ids(request)
    tenants = Tenant.objects.all() if ids is None else Tenant.objects.filter(pk__in=ids)
    return list(tenants.order_by("slug"))


def _scoped(request, model, **lookup):
    ids = admin_tenant_ids(request)
    queryset = model.objects.all() if ids is None else model.objects.filter(tenant_id__in=ids)
    return get_object_or_404(queryset, **lookup)


def _page(request, site, template: str, context: dict) -> TemplateResponse:
    request.current_app = site.name
    return TemplateResponse(request, template, {**site.each_context(request), **context})


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def operation_state(op: Operation) -> dict[str, Any]:
    """An operation as the live panel shows it first (then the socket's events move it)."""
    return {
        "operation_id": op.public_id,
        "kind": op.kind,
        "status": op.status,
        "progress": op.progress,
        "current_step": op.step,
        "bytes_done": op.bytes_done,
        "bytes_total": op.bytes_total,
        "throughput_bps": op.throughput_bps,
        "eta_seconds": op.eta_seconds,
        "backup_id": op.backup_id,
        "error": op.error_message,
    }


def panel(op: Operation, label: str = "") -> dict[str, Any]:
    state = operation_state(op)
    return {"state": state, "json": json.dumps(state), "label": label or _op_label(op)}


def _started(request, op: Operation, message: str):
    url = reverse("admin:console_operation", args=[op.public_id])
    if _wants_json(request):
        return JsonResponse({"message": message, "operation": operation_state(op), "operation_url": url}, status=201)
    messages.success(request, message)
    return HttpResponseRedirect(url)


def _invalid(request, form, site, template, context):
    if _wants_json(request):
        errors = {k: [str(m) for m in v] for k, v in form.errors.items()}
        return JsonResponse({"errors": errors}, status=422)
    return _page(request, site, template, {**context, "form": form})


# --- overview ---------------------------------------------------------------------------------


def overview_page(request, site):
    tenants = visible_tenants(request)
    wanted = request.GET.get("tenant", "")
    chosen = [t for t in tenants if t.slug == wanted] or tenants
    view = overview(chosen)
    return _page(
        request,
        site,
        "admin/console/overview.html",
        {
            "title": "Overview",
            "ov": view,
            "chart": chart(view.days),
            "tenants": tenants,
            "selected": wanted if len(chosen) == 1 and wanted else "",
            "many_tenants": len(tenants) > 1,
            "show_tenant": len(chosen) > 1,
            "humanize": humanize,
            "storages": [
                {
                    "usage": u,
                    "used": humanize.size(u.used_bytes),
                    "capacity": humanize.size(u.capacity_bytes) if u.capacity_bytes else None,
                    "percent": u.used_percent,
                    "percent_text": humanize.percent(u.used_percent),
                }
                for u in view.storages
            ],
            "running": [panel(op) for op in view.running],
        },
    )


def _op_label(op: Operation) -> str:
    target = ""
    if op.backup_id and op.backup:
        target = op.backup.name
    return f"{op.get_kind_display()} {target}".strip()


# --- back up now -------------------------------------------------------------------------------


class BackupNowForm(forms.Form):
    database = forms.ChoiceField(label="Database", required=False)
    database_name = forms.CharField(
        label="Database name",
        required=False,
        max_length=200,
        help_text="Only when the list above could not be read from the server.",
    )
    storage = forms.ModelChoiceField(
        queryset=Storage.objects.none(), required=False, empty_label="The tenant's default storage"
    )
    compression = forms.ChoiceField(choices=[("zstd", "zstd (fast, small)"), ("gzip", "gzip")], initial="zstd")
    name = forms.CharField(required=False, max_length=255, help_text="Optional; default: database and time.")

    def __init__(self, *args, tenant: Tenant, databases: list[dict] | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["storage"].queryset = Storage.objects.filter(tenant=tenant).order_by("-is_default", "name")
        if databases is None:
            del self.fields["database"]
        else:
            self.fields["database"].choices = [("", "— choose a database —")] + [
                (
                    d["name"],
                    f"{d['name']} ({humanize.size(d.get('size_bytes'))})"
                    if d.get("size_bytes") is not None
                    else d["name"],
                )
                for d in databases
            ]
            self.fields["database_name"].widget = forms.HiddenInput()

    def clean(self):
        data = super().clean()
        data["database_name"] = data.get("database") or data.get("database_name") or ""
        if not data["database_name"]:
            self.add_error("database" if "database" in self.fields else "database_name", "Choose a database.")
        return data


def server_backup(request, pk: int):
    from django.contrib import admin

    site = admin.site
    server = _scoped(request, Server, pk=pk)
    databases, list_error = None, ""
    if server.type in ("postgresql", "mysql"):
        try:
            databases = backup_services.server_list_databases(server=server)
        except DomainError as exc:
            list_error = f"The databases of {server.name} could not be listed: {exc.message}"
    else:
        raise Http404("Only database servers are backed up from here")
    form = BackupNowForm(request.POST or None, tenant=server.tenant, databases=databases)
    context = {
        "title": f"Back up now: {server.name}",
        "server": server,
        "list_error": list_error,
        "databases": databases or [],
        "opts": Server._meta,
        "recent": Backup.objects.filter(server=server).order_by("-created_at")[:8],
    }
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                op = backup_start(
                    tenant=server.tenant,
                    actor=request.user,
                    server=server,
                    database_name=data["database_name"],
                    storage=data["storage"],
                    compression=data["compression"],
                    name=data["name"],
                )
        except DomainError as exc:
            add_service_errors(
                form,
                exc,
                {
                    "server_id": "database",
                    "compression_type": "compression",
                    "database_name": "database" if databases is not None else "database_name",
                },
            )
        else:
            return _started(request, op, f"Backup of {data['database_name']} on {server.name} started.")
    if request.method == "POST":
        return _invalid(request, form, site, "admin/console/backup_now.html", context)
    return _page(request, site, "admin/console/backup_now.html", {**context, "form": form})


class ApplicationBackupForm(forms.Form):
    storage = forms.ModelChoiceField(
        queryset=Storage.objects.none(), required=False, empty_label="The tenant's default storage"
    )
    compression = forms.ChoiceField(choices=[("zstd", "zstd (fast, small)"), ("gzip", "gzip")], initial="zstd")

    def __init__(self, *args, tenant: Tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["storage"].queryset = Storage.objects.filter(tenant=tenant).order_by("-is_default", "name")


def application_backup(request, pk: int):
    from django.contrib import admin

    site = admin.site
    app = _scoped(request, Application, pk=pk)
    form = ApplicationBackupForm(request.POST or None, tenant=app.tenant)
    context = {
        "title": f"Back up now: {app.name}",
        "application": app,
        "sources": list(app.sources.all()),
        "opts": Application._meta,
        "recent": Backup.objects.filter(application=app).order_by("-created_at")[:8],
    }
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                op = backup_start(
                    tenant=app.tenant,
                    actor=request.user,
                    application=app,
                    storage=form.cleaned_data["storage"],
                    compression=form.cleaned_data["compression"],
                )
        except DomainError as exc:
            add_service_errors(form, exc, {"compression_type": "compression"})
        else:
            return _started(request, op, f"Backup of {app.name} started.")
    if request.method == "POST":
        return _invalid(request, form, site, "admin/console/backup_now.html", context)
    return _page(request, site, "admin/console/backup_now.html", {**context, "form": form})


# --- restore wizard --------------------------------------------------------------------------------


def restore_points(backup: Backup):
    """The completed backups of the same thing (application, or server and database), newest first."""
    points = Backup.objects.filter(tenant_id=backup.tenant_id, status=BackupStatus.COMPLETED)
    if backup.application_id:
        points = points.filter(application_id=backup.application_id)
    elif backup.server_id:
        points = points.filter(server_id=backup.server_id, database_name=backup.database_name)
    else:
        points = points.filter(pk=backup.pk)
    return points.select_related("storage").order_by("-created_at")[:40]


class RestoreWizardForm(forms.Form):
    restore_point = forms.TypedChoiceField(coerce=int, widget=forms.RadioSelect, label="Restore point")
    target_server = forms.ModelChoiceField(queryset=Server.objects.none(), required=False, label="Target server")
    target_database = forms.CharField(max_length=63, required=False, label="Target database")
    target_path = forms.CharField(
        max_length=1024,
        required=False,
        label="Restore folders into",
        help_text="The backed-up folder's content goes INTO this folder (not under its original absolute path).",
    )
    members = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="What to restore",
        help_text="None ticked: everything.",
    )
    strategy = forms.ChoiceField(
        choices=[
            ("create_new", "Create new (refuses a database that exists)"),
            ("overwrite", "Overwrite (replaces the target's current content)"),
        ],
        widget=forms.RadioSelect,
        initial="create_new",
        label="If the target exists",
    )
    confirm = forms.BooleanField(required=True, label="I have checked the target above")

    def __init__(self, *args, backup: Backup, points, **kwargs):
        super().__init__(*args, **kwargs)
        self.backup = backup
        self.fields["restore_point"].choices = [(b.pk, b.name or f"#{b.pk}") for b in points]
        self.fields["restore_point"].initial = backup.pk
        if backup.db_type:
            self.fields["target_server"].queryset = Server.objects.filter(
                tenant_id=backup.tenant_id, type=backup.db_type
            )
            self.fields["target_server"].initial = backup.server_id
            self.fields["target_database"].initial = f"{backup.database_name}_restored_{timezone.now():%Y%m%d_%H%M}"
            del self.fields["target_path"], self.fields["members"]
            self._add_tables_field(backup)
        else:
            del self.fields["target_server"], self.fields["target_database"]
            bundle = (backup.manifest or {}).get("bundle") or {}
            self.fields["members"].choices = [
                (
                    s["member"],
                    f"{s.get('name') or s['member']} ({s.get('type')}: {s.get('path') or s.get('database') or ''})",
                )
                for s in bundle.get("sources") or []
                if s.get("member")
            ]
            if not self.fields["members"].choices:
                del self.fields["members"]
            if any(s.get("type") == "path" for s in bundle.get("sources") or []):
                self.fields["paths"] = forms.CharField(
                    required=False,
                    max_length=20000,
                    widget=forms.Textarea(attrs={"rows": 3, "placeholder": "www/index.html\nlogs/*.gz"}),
                    label="Only these files or folders",
                    help_text="One per line, relative to the backed-up folder; * and ? match any characters. "
                    "Empty: everything. A line that matches nothing fails the restore.",
                )
        for i in range(MASK_ROWS):
            self.fields[f"mask_column_{i}"] = forms.CharField(
                required=False,
                max_length=200,
                label="Column",
                widget=forms.TextInput(attrs={"placeholder": "column, e.g. email" if i == 0 else "column"}),
            )
            self.fields[f"mask_rule_{i}"] = forms.ChoiceField(
                required=False,
                label="Rule",
                choices=[("", "—"), *[(r, r) for r in MASKING_RULES], ("fixed", "fixed value")],
            )
            self.fields[f"mask_value_{i}"] = forms.CharField(
                required=False,
                max_length=200,
                label="Value",
                widget=forms.TextInput(attrs={"placeholder": "value (fixed only)"}),
            )

    def _add_tables_field(self, backup: Backup) -> None:
        """PostgreSQL (custom format): restore a subset of tables, ticked from the backup's list
        or typed where the backup did not record one."""
        source = (backup.manifest or {}).get("source") or {}
        if backup.db_type != "postgresql" or source.get("format") == "plain":
            return
        help_text = (
            "None: the whole database. Each table comes with its indexes, constraints, defaults and "
            "sequences; a foreign key to a table left out is not restored."
        )
        if source.get("tables"):
            self.fields["tables"] = forms.MultipleChoiceField(
                required=False,
                widget=forms.CheckboxSelectMultiple,
                choices=[(t, t) for t in source["tables"]],
                label="Only these tables",
                help_text=help_text,
            )
        else:
            self.fields["tables"] = forms.CharField(
                required=False,
                max_length=4000,
                label="Only these tables",
                help_text=f"schema.table or table, separated by commas. {help_text}",
            )

    def mask_rows(self):
        return [(self[f"mask_column_{i}"], self[f"mask_rule_{i}"], self[f"mask_value_{i}"]) for i in range(MASK_ROWS)]

    def clean(self):
        data = super().clean()
        rules = {}
        for i in range(MASK_ROWS):
            column, rule = (data.get(f"mask_column_{i}") or "").strip(), data.get(f"mask_rule_{i}") or ""
            if column and not rule:
                self.add_error(f"mask_rule_{i}", f"Choose how to mask {column}.")
            elif rule and not column:
                self.add_error(f"mask_column_{i}", "Name the column to mask.")
            elif column:
                rules[column] = f"fixed:{data.get(f'mask_value_{i}') or ''}" if rule == "fixed" else rule
        data["masking_rules"] = rules
        return data


def restore_wizard(request, pk: int):
    from django.contrib import admin

    site = admin.site
    backup = _scoped(request, Backup, pk=pk)
    points = list(restore_points(backup))
    if not points:
        messages.error(request, f"Backup {backup.pk} is {backup.status}: only completed backups can be restored.")
        return HttpResponseRedirect(reverse("admin:backups_backup_change", args=[backup.pk]))
    form = RestoreWizardForm(request.POST or None, backup=backup, points=points)
    context = {
        "title": f"Restore {backup.application.name if backup.application else backup.database_name}",
        "backup": backup,
        "points": points,
        "opts": Backup._meta,
        "humanize": humanize,
        "verified_ids": set(
            Verification.objects.filter(backup__in=points, passed=True).values_list("backup_id", flat=True)
        ),
    }
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        point = next(b for b in points if b.pk == data["restore_point"])
        options = {"members": data["members"]} if data.get("members") else {}
        if data.get("tables"):
            options["tables"] = data["tables"]
        if (data.get("paths") or "").strip():
            options["paths"] = data["paths"]
        aliases = {"target_server_id": "target_server", "restore_strategy": "strategy", "backup_id": "restore_point"}
        try:
            with transaction.atomic():
                restore = restore_start(
                    tenant=point.tenant,
                    backup=point,
                    actor=request.user,
                    target_server=data.get("target_server"),
                    target_database=data.get("target_database") or "",
                    target_path=data.get("target_path") or "",
                    strategy=data["strategy"],
                    masking_rules=data["masking_rules"],
                    options=options or None,
                )
        except DomainError as exc:
            if isinstance(exc.details, dict) and any(str(k).startswith("masking_rules") for k in exc.details):
                exc.details = {
                    ("mask_column_0" if str(k).startswith("masking_rules") else k): v for k, v in exc.details.items()
                }
            add_service_errors(form, exc, aliases)
        else:
            return _started(request, restore.operation, f"Restore of {point.name} started.")
    if request.method == "POST":
        return _invalid(request, form, site, "admin/console/restore_wizard.html", context)
    return _page(request, site, "admin/console/restore_wizard.html", {**context, "form": form})


# --- verify, download, operation -------------------------------------------------------------------


@require_POST
def verify(request, pk: int):
    backup = _scoped(request, Backup, pk=pk)
    test_type = request.POST.get("test_type", "checksum")
    if test_type not in TEST_TYPES:
        raise Http404
    try:
        with transaction.atomic():
            verification = verification_start(
                tenant=backup.tenant, backup=backup, actor=request.user, test_type=test_type
            )
    except DomainError as exc:
        detail = (
            " ".join(str(m) for v in (exc.details or {}).values() for m in (v if isinstance(v, list) else [v]))
            if isinstance(exc.details, dict)
            else ""
        )
        messages.error(request, f"Backup {backup.pk}: {detail or exc.message}")
        return HttpResponseRedirect(reverse("admin:backups_backup_change", args=[backup.pk]))
    return _started(request, verification.operation, f"Verification ({test_type}) of {backup.name} started.")


@require_POST
def job_run_now(request, pk: int):
    """A job's "Run now": its backup starts at once (the job's storage, options and retention)."""

    job = _scoped(request, BackupJob, pk=pk)
    try:
        with transaction.atomic():
            op = job_run(job=job, actor=request.user)
    except DomainError as exc:
        messages.error(request, f"{job.name}: {exc.message}")
        return HttpResponseRedirect(reverse("admin:schedules_backupjob_change", args=[job.pk]))
    if op is None:
        messages.warning(request, f"{job.name}: nothing was started.")
        return HttpResponseRedirect(reverse("admin:schedules_backupjob_change", args=[job.pk]))
    return _started(request, op, f"Backup of job {job.name} started.")


def download(request, pk: int):
    backup = _scoped(request, Backup, pk=pk)
    raw = request.GET.get("raw") == "1"
    try:
        stream = backup_download_stream(backup=backup, raw=raw)
    except DomainError as exc:
        messages.error(request, f"Backup {backup.pk}: {exc.message}")
        return HttpResponseRedirect(reverse("admin:backups_backup_change", args=[backup.pk]))
    response = StreamingHttpResponse(stream.chunks, content_type=stream.content_type)
    response["Content-Disposition"] = f'attachment; filename="{stream.filename}"'
    if stream.size:
        response["Content-Length"] = str(stream.size)
    return response


def operation_page(request, public_id: str):
    from django.contrib import admin

    op = _scoped(request, Operation, public_id=public_id)
    restore = (
        Restore.objects.filter(operation=op).first()
        if op.kind in (OperationKind.RESTORE, OperationKind.RECOVERY)
        else None
    )
    return _page(
        request,
        admin.site,
        "admin/console/operation.html",
        {
            "title": f"{op.get_kind_display()} {op.public_id}",
            "op": op,
            "p": panel(op),
            "restore": restore,
            "opts": Operation._meta,
        },
    )


def schedule_preview(request):
    """The next five runs of a schedule being edited (the job form asks as fields change)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    q = request.GET
    kind, tz = q.get("schedule_type") or "cron", q.get("timezone") or "UTC"
    try:
        validate_timezone(tz)
        if kind in ("cron", "custom"):
            cron = validate_cron(q.get("cron_expression") or "")
        else:
            days = [int(d) for d in q.getlist("days_of_week") if d.isdigit()] or None
            day = int(q["day_of_month"]) if (q.get("day_of_month") or "").isdigit() else None
            time = (q.get("schedule_time") or "")[:5] or ("00:00" if kind == "hourly" else None)
            cron = frequency_to_cron(kind, time, days, day)
        runs = cron_next_runs(cron, tz, datetime.now(ZoneInfo("UTC")), 5)
    except (ValueError, KeyError) as exc:
        return JsonResponse({"error": str(exc)}, status=422)
    zone = ZoneInfo(tz)
    return JsonResponse(
        {
            "cron": cron,
            "runs": [
                {"utc": r.strftime("%a %Y-%m-%d %H:%M"), "local": r.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")}
                for r in runs
            ],
        }
    )
