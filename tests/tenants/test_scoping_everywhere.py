"""Tenant scoping holds on every route, found by walking the URLconf (not a list kept by hand).

- Statically: every view over a tenant-owned model is scoped by the one mechanism
  (``tenant_queryset`` behind ``TenantContextMixin.get_queryset``), never its own query.
- Dynamically: tenant B's admin sends every method of every route, with each path parameter
  filled by tenant A's real ids (and A's workspace), and never sees A's data, never gets a
  2xx on A's rows, never changes them, and never causes a 500.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver

from audit import notifications
from audit.models import AuditEvent
from backups import services
from backups.models import (
    Application,
    Backup,
    Operation,
    Restore,
    Server,
    Snapshot,
    Storage,
    Verification,
)
from backups.services import commands as command_services
from backups.services.operations import operation_create
from schedules import services as schedule_services
from schedules.models import BackupJob, Drill, RetentionPolicy
from tenants import services as tenant_services
from tenants.models import ApiKey, Role, Tenant
from tenants.scoping import TenantContextMixin
from tests.conftest import make_member

pytestmark = pytest.mark.django_db

MARK = "zqalphaonly"  # in every name of tenant A's rows; must never reach tenant B
SKIPPED_PREFIXES = ("admin/", "static/", "api/schema", "api/docs", "api/redoc")


def routes() -> Iterator[tuple[str, URLPattern]]:
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern), p

    for route, pattern in walk(get_resolver().url_patterns):
        if not route.startswith(SKIPPED_PREFIXES):
            yield route, pattern


def view_class(pattern: URLPattern):
    return getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)


def is_tenant_owned(model) -> bool:
    return model is not None and any(
        isinstance(f, models.ForeignKey) and f.related_model is Tenant and f.name == "tenant"
        for f in model._meta.get_fields()
    )


def test_every_view_over_tenant_rows_uses_the_one_scoping_mechanism():
    checked, unscoped = [], []
    for route, pattern in routes():
        cls = view_class(pattern)
        if cls is None:
            continue
        queryset = getattr(cls, "queryset", None)
        serializer = getattr(cls, "serializer_class", None)
        model = getattr(queryset, "model", None) or getattr(getattr(serializer, "Meta", None), "model", None)
        if not is_tenant_owned(model):
            continue
        checked.append(route)
        own_get_queryset = next(k for k in cls.__mro__ if "get_queryset" in k.__dict__)
        if not hasattr(cls, "tenant_queryset") or own_get_queryset is not TenantContextMixin:
            unscoped.append(f"{route} ({cls.__name__}: get_queryset from {own_get_queryset.__name__})")
    assert len(checked) >= 20, checked  # the walk really found the viewsets
    assert not unscoped, "views over tenant-owned rows must scope through tenant_queryset: " + ", ".join(unscoped)


# --- tenant A's world --------------------------------------------------------------------------


@pytest.fixture
def world(tenant_a, tenant_b, admin_b):
    root = tenant_a.path_roots[0]
    user = make_member(tenant_a, f"user-{MARK}", Role.OPERATOR)
    server = services.server_create(
        tenant=tenant_a,
        name=f"srv-{MARK}",
        type="postgresql",
        host="db.example",
        port=5432,
        credentials={"username": f"u-{MARK}", "password": f"p-{MARK}"},
    )
    storage = services.storage_create(
        tenant=tenant_a, name=f"st-{MARK}", type="local", configuration={"path": f"{root}/store"}
    )
    app = services.application_create(
        tenant=tenant_a,
        name=f"app-{MARK}",
        sources=[
            {"type": "path", "name": f"files-{MARK}", "path": f"{root}/www"},
            {"type": "postgresql", "server_id": server.pk, "database_name": f"db{MARK}"},
        ],
    )
    backup = Backup.objects.create(
        tenant=tenant_a,
        name=f"bk-{MARK}",
        status="completed",
        application=app,
        storage=storage,
        storage_path=f"alpha/{MARK}.bpaf",
        checksum="ab" * 32,
        database_name=f"db{MARK}",
        server=server,
        db_type="postgresql",
    )
    op = operation_create(tenant=tenant_a, kind="backup", backup=backup, details={"note": MARK})
    restore_op = operation_create(tenant=tenant_a, kind="restore", backup=backup)
    restore = Restore.objects.create(
        tenant=tenant_a,
        backup=backup,
        operation=restore_op,
        application=app,
        target_database=f"copy{MARK}",
        status="completed",
    )
    verification = Verification.objects.create(
        tenant=tenant_a,
        backup=backup,
        status="running",
        operation=operation_create(tenant=tenant_a, kind="verify", backup=backup),
        result={"note": MARK},
    )
    snapshot = Snapshot.objects.create(tenant=tenant_a, name=f"snap-{MARK}", data={"note": MARK})
    policy = RetentionPolicy.objects.create(tenant=tenant_a, name=f"rp-{MARK}", keep_last_n=3)
    job = schedule_services.job_create(
        tenant=tenant_a,
        name=f"job-{MARK}",
        application=app,
        storage=storage,
        schedule_type="hourly",
        public_id=f"sched{MARK}",
    )
    drill = Drill.objects.create(
        tenant=tenant_a, job=job, job_name=job.name, backup=backup, backup_ref=backup.pk, error_message=MARK
    )
    plan = schedule_services.cleanup_analyse(tenant=tenant_a, job=job)
    cleanup = schedule_services.cleanup_execute(plan=plan, queue=False)
    key, _ = tenant_services.api_key_create(tenant=tenant_a, name=f"key-{MARK}", role=Role.ADMIN)
    # The console's import, sync and recovery operations (their progress routes).
    console_ops = [
        operation_create(tenant=tenant_a, kind=kind, backup=backup, details={"note": MARK}).public_id
        for kind in ("import", "sync", "recovery")
    ]
    command = command_services.command_create(tenant=tenant_a, name=f"cmd-{MARK}", command_template="echo {{x}}")
    ssh = services.server_create(tenant=tenant_a, name="ssh-box", type="ssh", host="ssh.example", port=22)
    execution = command_services.command_execute(command=command, server=ssh, variables={"x": MARK})
    channel = notifications.channel_create(
        tenant=tenant_a, name=f"ch-{MARK}", type="slack", config={"webhook_url": f"https://hooks.example.com/{MARK}"}
    )
    webhook, _ = notifications.webhook_create(
        tenant=tenant_a, url=f"https://hooks.example.com/{MARK}", event_types=["backup.failed"], description=MARK
    )
    ints = {
        "servers": [server.pk],
        "storage": [storage.pk],
        "providers": [storage.pk],
        "backup-storages": [storage.pk],
        "applications": [app.pk],
        "backups": [backup.pk],
        "restores": [restore.pk],
        "jobs": [job.pk],
        "schedules": [job.pk],
        "retention-policies": [policy.pk],
        "api-keys": [key.pk],
        "users": [user.pk],
        "verify": [backup.pk, verification.pk],
        "progress": [cleanup.public_id, op.public_id, *console_ops],
        "snapshots": [snapshot.pk],
        "preview": [backup.pk],
        "commands": [command.pk],
        "channels": [channel.pk],
        "webhooks": [webhook.pk],
        "drills": [drill.pk],
    }
    # The console's backup downloads and details, and restore progress by either of its ids.
    ints.update({"download": [backup.pk], "details": [backup.pk]})
    ints["progress"] += [restore_op.public_id, restore.pk]
    return {
        "ids": ints,
        "rows": [
            server,
            storage,
            app,
            backup,
            op,
            restore,
            verification,
            snapshot,
            policy,
            job,
            drill,
            key,
            command,
            execution,
            channel,
            webhook,
        ],
    }


def fingerprint(rows) -> list:
    return [(type(r).__name__, r.pk, type(r).objects.filter(pk=r.pk).values().first()) for r in rows]


# Routes whose parameter is not a tenant row id (tokens that carry their own proof).
NOT_ROW_IDS = {"api/v1/downloads/<str:token>", "api/acronis/agent/<str:agent_id>/backups"}


def fillings(route: str, ids: dict) -> Iterator[tuple[str, bool]]:
    """Concrete paths: every combination of tenant A's ids for the route's parameters, the
    workspace once as A's (``alpha``) and once as B's own (``bravo``)."""
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)
    if names == ["ws_id"]:  # B's own workspace is B's; A's is A's
        yield re.sub(r"<(?:\w+:)?ws_id>", "bravo", route), False
        yield re.sub(r"<(?:\w+:)?ws_id>", "alpha", route), True
        return
    pools = []
    for name in names:
        if name == "ws_id":
            pools.append(["bravo", "alpha"])
            continue
        segment = re.search(rf"([\w-]+)/<(?:\w+:)?{name}>", route)
        kind = segment.group(1) if segment else ""
        assert kind in ids, f"{route}: no ids of tenant A for parameter {name} after {kind!r}; add them above"
        pools.append(ids[kind])

    def expand(template: str, remaining: list[list]) -> Iterator[tuple[str, bool]]:
        if not remaining:
            yield template, bool(names)
            return
        for value in remaining[0]:
            yield from expand(re.sub(r"<(?:\w+:)?\w+>", str(value), template, count=1), remaining[1:])

    yield from expand(route, pools)


def test_tenant_b_reaches_none_of_tenant_a_rows_on_any_route(api, world, admin_b):
    client = api(admin_b)
    before = fingerprint(world["rows"])
    events_before = AuditEvent.objects.filter(tenant__slug="alpha").count()
    tried, leaks, successes, errors = 0, [], [], []
    for route, pattern in routes():
        if route in NOT_ROW_IDS:
            continue
        cls = view_class(pattern)
        actions = getattr(pattern.callback, "actions", None)
        methods = [
            m
            for m in (actions or {m: m for m in ("get", "post", "put", "patch", "delete")})
            if actions or (cls and hasattr(cls, m))
        ]
        for path, has_ids in fillings(route, world["ids"]):
            for method in methods:
                tried += 1
                response = getattr(client, method)(f"/{path}", {} if method != "get" else None, format="json")
                body = b"".join(response.streaming_content) if response.streaming else response.content
                where = f"{method.upper()} /{path} -> {response.status_code}"
                if MARK.encode() in body:
                    leaks.append(where)
                if response.status_code == 500:  # 502-504 are documented upstream answers
                    errors.append(where)
                if has_ids and 200 <= response.status_code < 300:
                    successes.append(where)
    assert tried > 100, tried
    assert not leaks, f"tenant A's data reached tenant B: {leaks}"
    assert not errors, errors
    assert not successes, f"tenant B acted on tenant A's rows: {successes}"
    assert fingerprint(world["rows"]) == before
    assert AuditEvent.objects.filter(tenant__slug="alpha").count() == events_before


def test_lists_of_tenant_b_are_empty_of_a_and_a_sees_its_own(api, world, admin_a):
    """The crawler's marker is really there for the owner (so its absence above means something)."""
    body = api(admin_a).get("/api/v1/backups").content
    assert MARK.encode() in body
    assert Server.objects.filter(name__contains=MARK).count() == 1
    assert (
        Storage.objects.filter(name__contains=MARK).exists()
        and Application.objects.filter(name__contains=MARK).exists()
    )
    assert Operation.objects.filter(details__note=MARK).exists() and ApiKey.objects.filter(name__contains=MARK)
    assert BackupJob.objects.filter(name__contains=MARK).exists()
