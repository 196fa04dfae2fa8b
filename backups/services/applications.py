"""Applications and their sources: what to protect.

An application is a named group of sources backed up together (one artifact, one restore
point): PostgreSQL or MySQL databases on the tenant's servers, SQLite files, folders with
include/exclude globs, and the tenant's own platform configuration. Each tenant has a
default application (``application_get_default``), whose sources are the console facade's
"components" (system-backup-recovery.rst: system, data, config, database).

Sources are written with their application in one transaction: on update the given list
replaces the current one (items with an ``id`` update that source, items without one are
created, sources left out are deleted). Errors name the item: ``sources[2].server_id``.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from audit.services import emit
from backupplatform.errors import Conflict, ValidationFailed
from tenants import capabilities
from tenants.models import Tenant

from .. import confinement
from ..models import Application, Server, ServerType, Source, SourceType
from ..models.applications import Component

DEFAULT_APPLICATION_NAME = "default"
SOURCE_FIELDS = ("name", "type", "server_id", "database_name", "path", "include", "exclude", "component")
DEFAULT_COMPONENT = {
    SourceType.POSTGRESQL: Component.DATABASE,
    SourceType.MYSQL: Component.DATABASE,
    SourceType.SQLITE: Component.DATABASE,
    SourceType.PATH: Component.DATA,
    SourceType.PLATFORM_CONFIG: Component.CONFIG,
}
# A database source needs a server that speaks its protocol.
DATABASE_SERVER_TYPES = {SourceType.POSTGRESQL: ServerType.POSTGRESQL, SourceType.MYSQL: ServerType.MYSQL}


def application_get_default(*, tenant: Tenant) -> Application:
    """The tenant's default application, created (empty) on first use."""
    app = Application.objects.filter(tenant=tenant, is_default=True).first()
    if app is not None:
        return app
    try:
        with transaction.atomic():
            app = Application.objects.create(
                tenant=tenant,
                name=DEFAULT_APPLICATION_NAME,
                is_default=True,
                description="The workspace's default application",
            )
    except IntegrityError:
        # Another request created it first (one_default_application), or the name is taken.
        app = Application.objects.filter(tenant=tenant, is_default=True).first()
        if app is None:
            raise
        return app
    emit(
        action="application_create",
        tenant=tenant,
        resource_type="application",
        resource_id=app.pk,
        details={"name": app.name, "is_default": True},
    )
    return app


def _is_abs(path: str) -> bool:
    return path.startswith("/") and ".." not in path.split("/") and "\x00" not in path


def _clean_source(*, tenant: Tenant, item: dict, index: int, servers: dict[int, Server]) -> dict:
    """Validate one source item; returns model field values. Errors name ``sources[i].field``."""
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(f"sources[{index}].{field}", []).append(message)

    kind = item.get("type")
    server_id = item.get("server_id")
    server = None
    if server_id is not None:
        # Another tenant's server is simply not found: never confirm it exists.
        server = servers.get(server_id)
        if server is None:
            err("server_id", "Server not found.")
    path = item.get("path") or ""
    database = item.get("database_name") or ""
    if kind in DATABASE_SERVER_TYPES:
        if server_id is None:
            err("server_id", f"A {kind} source needs a server.")
        elif server is not None and server.type != DATABASE_SERVER_TYPES[kind]:
            err("server_id", f"Server '{server.name}' is a {server.type} server, not {kind}.")
        if not database:
            err("database_name", "This field is required.")
        if path:
            err("path", f"A {kind} source has no path.")
    elif kind in (SourceType.SQLITE, SourceType.PATH):
        if not path:
            err("path", "This field is required.")
        elif not _is_abs(path):
            err("path", "Must be an absolute path without '..'.")
        elif confinement.source_needs_confinement(type=kind, server=server) and (
            reason := confinement.check_data_path(tenant, path)
        ):
            err("path", reason)
        if database:
            err("database_name", f"A {kind} source has no database name.")
        if server is not None and server.type not in (ServerType.SSH, ServerType.LOCAL):
            err("server_id", "Files are read from an ssh or local server (or, without a server, locally).")
    elif kind == SourceType.PLATFORM_CONFIG:
        for field in ("server_id", "database_name", "path"):
            if item.get(field):
                err(field, "The platform configuration source takes no server, database or path.")
    if kind != SourceType.PATH:
        for field in ("include", "exclude"):
            if item.get(field):
                err(field, "Include/exclude globs apply to path sources only.")
    for field in ("include", "exclude"):
        for n, glob in enumerate(item.get(field) or []):
            if not glob or "\x00" in glob:
                err(f"{field}[{n}]", "A glob must be a non-empty string.")
    if errors:
        raise ValidationFailed(details=errors)
    name = item.get("name") or database or (path.rstrip("/").rsplit("/", 1)[-1] if path else "") or kind
    return {
        "name": name,
        "type": kind,
        "server": server,
        "database_name": database,
        "path": path,
        "include": list(item.get("include") or []),
        "exclude": list(item.get("exclude") or []),
        "component": item.get("component") or DEFAULT_COMPONENT[kind],
    }


def _write_sources(*, app: Application, items: list[dict]) -> list[str]:
    """Replace ``app``'s sources by ``items`` (see module docstring); returns change notes."""
    tenant = app.tenant
    server_ids = {i["server_id"] for i in items if i.get("server_id") is not None}
    servers = {s.pk: s for s in Server.objects.filter(tenant=tenant, pk__in=server_ids)}
    existing = {s.pk: s for s in app.sources.all()}
    cleaned: list[tuple[int | None, dict]] = []
    errors: dict[str, list[str]] = {}
    names: dict[str, int] = {}
    for index, item in enumerate(items):
        try:
            values = _clean_source(tenant=tenant, item=item, index=index, servers=servers)
        except ValidationFailed as exc:
            errors.update(exc.details)
            continue
        source_id = item.get("id")
        if source_id is not None and source_id not in existing:
            errors[f"sources[{index}].id"] = ["No such source in this application."]
            continue
        if values["name"] in names:
            errors[f"sources[{index}].name"] = [f"Duplicate of sources[{names[values['name']]}].name."]
            continue
        names[values["name"]] = index
        if values["type"] == SourceType.PLATFORM_CONFIG and any(
            v["type"] == SourceType.PLATFORM_CONFIG for _, v in cleaned
        ):
            errors[f"sources[{index}].type"] = ["An application has at most one platform_config source."]
            continue
        cleaned.append((source_id, values))
    if errors:
        raise ValidationFailed(details=errors)
    kept = {sid for sid, _ in cleaned if sid is not None}
    removed = [pk for pk in existing if pk not in kept]
    # Delete first so a kept-or-new source may take a removed one's name.
    Source.objects.filter(pk__in=removed).delete()
    notes = [f"removed:{pk}" for pk in removed]
    # Names are unique per application: park updated rows on temporary names, then rename.
    for sid, _ in cleaned:
        if sid is not None:
            Source.objects.filter(pk=sid).update(name=f"__renaming__{sid}")
    for position, (sid, values) in enumerate(cleaned):
        if sid is None:
            source = Source.objects.create(tenant=tenant, application=app, position=position, **values)
            notes.append(f"added:{source.pk}")
        else:
            Source.objects.filter(pk=sid).update(position=position, **values)
            notes.append(f"updated:{sid}")
    return notes


def _check_name(*, tenant: Tenant, name: str, exclude_pk: int | None = None) -> None:
    qs = Application.objects.filter(tenant=tenant, name=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed(details={"name": ["An application with this name already exists."]})


@transaction.atomic
def application_create(
    *,
    tenant: Tenant,
    name: str,
    namespace: str = "",
    labels: dict | None = None,
    description: str = "",
    sources: list[dict] | None = None,
) -> Application:
    """Create an application and its sources in one transaction."""
    capabilities.require_feature(tenant)
    _check_name(tenant=tenant, name=name)
    app = Application.objects.create(
        tenant=tenant, name=name, namespace=namespace, labels=labels or {}, description=description
    )
    notes = _write_sources(app=app, items=sources or [])
    emit(
        action="application_create",
        tenant=tenant,
        resource_type="application",
        resource_id=app.pk,
        details={"name": name, "sources": notes},
    )
    return app


@transaction.atomic
def application_update(*, app: Application, **changes: Any) -> Application:
    """Partial update; a given ``sources`` list replaces the current sources atomically."""
    capabilities.require_feature(app.tenant)
    changed: list[str] = []
    if "name" in changes and changes["name"] != app.name:
        _check_name(tenant=app.tenant, name=changes["name"], exclude_pk=app.pk)
    for field in ("name", "namespace", "labels", "description"):
        if field in changes and getattr(app, field) != changes[field]:
            setattr(app, field, changes[field])
            changed.append(field)
    notes: list[str] = []
    if "sources" in changes:
        notes = _write_sources(app=app, items=changes["sources"] or [])
        changed.append("sources")
    app.save()
    emit(
        action="application_update",
        tenant=app.tenant,
        resource_type="application",
        resource_id=app.pk,
        details={"changed_fields": changed, "sources": notes},
    )
    return app


@transaction.atomic
def application_delete(*, app: Application) -> None:
    """Delete an application, its sources and its policy; its backups are kept."""
    if app.is_default:
        raise Conflict(
            "The default application cannot be deleted (the console's components live in it)",
            code="DEFAULT_APPLICATION",
        )
    pk, tenant, name = app.pk, app.tenant, app.name
    app.delete()
    emit(
        action="application_delete", tenant=tenant, resource_type="application", resource_id=pk, details={"name": name}
    )


def source_fields(source: Source) -> dict[str, Any]:
    """A source as plain values (used by facades and the console's components)."""
    return {
        "id": source.pk,
        "name": source.name,
        "type": source.type,
        "server_id": source.server_id,
        "database_name": source.database_name,
        "path": source.path,
        "include": source.include,
        "exclude": source.exclude,
        "component": source.component,
        "position": source.position,
    }
