"""The tenant's platform configuration as one document, and applying it back.

Components (the console's snapshot ``components``, the export's ``modules``): ``servers``,
``storages``, ``retention_policies``, ``applications`` (with their sources), ``schedules``
(backup jobs, with their notification settings) and ``storage_policies``. Rows are matched
by name (schedules by their ``schedule_id``), so a document taken in one workspace applies
to another one too.

Secrets: ``secrets="hidden"`` (the export, the ``platform_config`` source of a backup) lists
each credential field as ``[HIDDEN]``; ``secrets="sealed"`` (snapshots) keeps the credentials
as a Fernet token of the platform's field key, and the snapshot artifact around it is
itself encrypted with the tenant's data key. Applying a document whose credentials are
hidden keeps the credentials the row has.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import emit
from backupplatform.errors import Conflict, ValidationFailed
from backupplatform.fields import decrypt_text, encrypt_text
from tenants.models import Tenant

from ..models import Application, Backup, BackupCopy, Server, Storage, StoragePolicy

FORMAT = "bp-config/1"
HIDDEN = "[HIDDEN]"
COMPONENTS = ("servers", "storages", "retention_policies", "applications", "schedules", "storage_policies")
SERVER_FIELDS = ("description", "type", "environment", "host", "port", "tags")
STORAGE_FIELDS = (
    "description",
    "type",
    "status",
    "configuration",
    "labels",
    "is_default",
    "quota_bytes",
    "cleanup_threshold",
    "retention",
)
SOURCE_FIELDS = ("name", "type", "database_name", "path", "include", "exclude", "component")


@dataclass(frozen=True)
class ConfigSection:
    """A component of the configuration that another app contributes (``schedules`` adds
    ``retention_policies`` and ``schedules`` in its ``AppConfig.ready``), so this module never
    imports the apps above it.

    ``export(tenant=..., secrets=...)`` gives the component's value; ``apply(tenant, value)``
    makes the tenant's rows equal to it and returns change notes. ``first_pass`` (optional)
    runs before every component is applied, with ``(tenant, value, chosen, modules)``: e.g.
    schedules that use rows about to go are removed first.
    """

    name: str
    export: Callable[..., Any]
    apply: Callable[[Tenant, Any], list[str]]
    first_pass: Callable[..., list[str]] | None = None


SECTIONS: dict[str, ConfigSection] = {}


def register_config_section(section: ConfigSection) -> None:
    SECTIONS[section.name] = section


def _secret(credentials: dict | None, secrets: str) -> Any:
    credentials = credentials or {}
    if secrets == "sealed":
        return {"sealed": encrypt_text(json.dumps(credentials, sort_keys=True))} if credentials else {}
    return {key: HIDDEN for key in sorted(credentials)}


def _unseal(value: Any) -> dict | None:
    """Credentials of a document: a dict, or ``None`` when they are hidden (keep the row's)."""
    if isinstance(value, dict) and set(value) == {"sealed"}:
        try:
            return json.loads(decrypt_text(value["sealed"]))
        except Exception:  # another platform's key: the credentials cannot come back
            raise ValidationFailed(
                details={
                    "credentials": ["Sealed credentials of this snapshot cannot be decrypted with this platform's key."]
                }
            ) from None
    if not value or (isinstance(value, dict) and all(v == HIDDEN for v in value.values())):
        return None
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return dict(value)
    raise ValidationFailed(details={"credentials": ["Must be an object of strings."]})


def platform_config_export(
    *, tenant: Tenant, components: list[str] | None = None, secrets: str = "hidden", metadata: dict | None = None
) -> dict[str, Any]:
    """The configuration of ``tenant`` (only ``components`` when given)."""
    wanted = set(components or COMPONENTS)
    modules: dict[str, Any] = {}
    if "servers" in wanted:
        modules["servers"] = [
            {
                "name": s.name,
                **{f: getattr(s, f) for f in SERVER_FIELDS},
                "credentials": _secret(s.credentials, secrets),
            }
            for s in Server.objects.filter(tenant=tenant).order_by("name")
        ]
    if "storages" in wanted:
        modules["storages"] = [
            {
                "name": s.name,
                **{f: getattr(s, f) for f in STORAGE_FIELDS},
                "credentials": _secret(s.credentials, secrets),
            }
            for s in Storage.objects.filter(tenant=tenant).order_by("name")
        ]
    if "applications" in wanted:
        apps = Application.objects.filter(tenant=tenant).prefetch_related("sources__server").order_by("name")
        modules["applications"] = [
            {
                "name": a.name,
                "namespace": a.namespace,
                "labels": a.labels,
                "description": a.description,
                "is_default": a.is_default,
                "sources": [
                    {**{f: getattr(s, f) for f in SOURCE_FIELDS}, "server": s.server.name if s.server else None}
                    for s in sorted(a.sources.all(), key=lambda s: (s.position, s.pk))
                ],
            }
            for a in apps
        ]
    if "storage_policies" in wanted:
        policy = StoragePolicy.objects.filter(tenant=tenant).select_related("replication_target").first()
        modules["storage_policies"] = {
            "replication_enabled": bool(policy and policy.replication_enabled),
            "replication_target": policy.replication_target.name if policy and policy.replication_target else None,
            "compression_default": policy.compression_default if policy else "zstd",
        }
    for name, section in SECTIONS.items():
        if name in wanted:
            modules[name] = section.export(tenant=tenant, secrets=secrets)
    modules = {name: modules[name] for name in COMPONENTS if name in modules}
    from django.conf import settings

    return {
        "export_type": "configuration",
        "format": FORMAT,
        "timestamp": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "gateway": {"id": tenant.slug, "name": tenant.name, "version": getattr(settings, "PLATFORM_VERSION", "v1")},
        "modules": modules,
        "settings": {"secrets": secrets},
        "metadata": metadata or {},
    }


def platform_config_download(*, tenant: Tenant, exported_by: str, reason: str = "") -> dict[str, Any]:
    """The configuration as a document to keep (secrets left out), recorded (``config_export``)."""
    document = platform_config_export(
        tenant=tenant, secrets="hidden", metadata={"exported_by": exported_by, "export_reason": reason[:200]}
    )
    emit(
        action="config_export",
        tenant=tenant,
        resource_type="configuration",
        resource_id=tenant.slug,
        details={"components": sorted(document["modules"])},
    )
    return document


def config_components(document: dict) -> list[str]:
    """The components a configuration document holds (validated shape)."""
    if (
        not isinstance(document, dict)
        or document.get("export_type") != "configuration"
        or not isinstance(document.get("modules"), dict)
    ):
        raise ValidationFailed(details={"file": ["Not a configuration export of this platform."]})
    unknown = sorted(set(document["modules"]) - set(COMPONENTS))
    if unknown:
        raise ValidationFailed(details={"modules": [f"Unknown components: {', '.join(unknown)}."]})
    return [c for c in COMPONENTS if c in document["modules"]]


# --- apply ---------------------------------------------------------------------------------------


def config_items(modules: dict, name: str) -> list[dict]:
    items = modules.get(name)
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("name", i.get("schedule_id")), str) for i in items
    ):
        raise ValidationFailed(details={f"modules.{name}": ["Must be a list of objects with a name."]})
    return items


def _apply_servers(tenant: Tenant, items: list[dict]) -> list[str]:
    from . import servers as svc

    notes = []
    current = {s.name: s for s in Server.objects.filter(tenant=tenant)}
    for item in items:
        fields = {f: item[f] for f in SERVER_FIELDS if f in item}
        creds = _unseal(item.get("credentials"))
        server = current.pop(item["name"], None)
        if server is None:
            svc.server_create(tenant=tenant, name=item["name"], credentials=creds or {}, **fields)
            notes.append(f"server created: {item['name']}")
        else:
            if creds is not None:
                # Replace, not merge: keys absent from the snapshot go.
                fields["credentials"] = {**{k: None for k in server.credentials or {}}, **creds}
            svc.server_update(server=server, **fields)
    for name, server in current.items():  # not in the snapshot: removed (refused while in use)
        svc.server_delete(server=server)
        notes.append(f"server deleted: {name}")
    return notes


def _apply_storages(tenant: Tenant, items: list[dict]) -> list[str]:
    from . import storages as svc

    notes = []
    current = {s.name: s for s in Storage.objects.filter(tenant=tenant)}
    for item in items:
        fields = {f: item[f] for f in STORAGE_FIELDS if f in item}
        extra = {k: fields.pop(k) for k in ("cleanup_threshold", "retention") if k in fields}
        creds = _unseal(item.get("credentials"))
        storage = current.pop(item["name"], None)
        if storage is None:
            storage = svc.storage_create(tenant=tenant, name=item["name"], credentials=creds or {}, **fields)
            notes.append(f"storage created: {item['name']}")
        else:
            if storage.type != fields.get("type", storage.type):
                raise Conflict(
                    f"Storage '{storage.name}' is {storage.type} now, {fields['type']} in the snapshot; "
                    "a storage's type cannot change",
                    code="SNAPSHOT_CONFLICT",
                )
            fields.pop("type", None)
            if "configuration" in fields:  # replace, not merge
                fields["configuration"] = {**{k: None for k in storage.configuration or {}}, **fields["configuration"]}
            if creds is not None:
                fields["credentials"] = {**{k: None for k in storage.credentials or {}}, **creds}
            storage = svc.storage_update(storage=storage, **fields)
        if extra:
            Storage.objects.filter(pk=storage.pk).update(**extra)
    for name, storage in current.items():
        if Backup.objects.filter(storage=storage).exists() or BackupCopy.objects.filter(storage=storage).exists():
            raise Conflict(
                f"Storage '{name}' is not in the snapshot but holds backups; delete or move them first",
                code="SNAPSHOT_CONFLICT",
                details={"storage": name},
            )
        svc.storage_delete(storage=storage, force=True)
        notes.append(f"storage deleted: {name}")
    return notes


def _apply_applications(tenant: Tenant, items: list[dict]) -> list[str]:
    from . import applications as svc

    notes = []
    servers = {s.name: s.pk for s in Server.objects.filter(tenant=tenant)}
    current = {a.name: a for a in Application.objects.filter(tenant=tenant)}
    default = next((a for a in current.values() if a.is_default), None)
    for item in items:
        sources = []
        for n, source in enumerate(item.get("sources") or []):
            entry = {f: source[f] for f in SOURCE_FIELDS if f in source}
            if source.get("server"):
                if source["server"] not in servers:
                    raise ValidationFailed(
                        details={
                            f"applications.{item['name']}.sources[{n}].server": [
                                f"No server named '{source['server']}' (restore the servers component too)."
                            ]
                        }
                    )
                entry["server_id"] = servers[source["server"]]
            sources.append(entry)
        fields = {f: item[f] for f in ("namespace", "labels", "description") if f in item}
        app = current.pop(item["name"], None)
        if app is None and item.get("is_default") and default is not None:
            current.pop(default.name, None)
            app, fields["name"] = default, item["name"]
        if app is None:
            app = svc.application_create(tenant=tenant, name=item["name"], sources=sources, **fields)
            if item.get("is_default") and default is None:
                Application.objects.filter(pk=app.pk).update(is_default=True)
            notes.append(f"application created: {item['name']}")
        else:
            existing = {s.name: s.pk for s in app.sources.all()}
            for entry in sources:
                if entry.get("name") in existing:
                    entry["id"] = existing[entry["name"]]
            svc.application_update(app=app, sources=sources, **fields)
    for name, app in current.items():
        if app.is_default:
            svc.application_update(app=app, sources=[])
            continue
        svc.application_delete(app=app)
        notes.append(f"application deleted: {name}")
    return notes


def _apply_storage_policies(tenant: Tenant, item: dict) -> list[str]:
    if not isinstance(item, dict):
        raise ValidationFailed(details={"modules.storage_policies": ["Must be an object."]})
    target = None
    if item.get("replication_target"):
        target = Storage.objects.filter(tenant=tenant, name=item["replication_target"]).first()
        if target is None:
            raise ValidationFailed(
                details={
                    "modules.storage_policies.replication_target": [
                        f"No storage named '{item['replication_target']}' (restore the storages component too)."
                    ]
                }
            )
    StoragePolicy.objects.update_or_create(
        tenant=tenant,
        defaults={
            "replication_enabled": bool(item.get("replication_enabled")),
            "replication_target": target,
            "compression_default": item.get("compression_default") or "zstd",
        },
    )
    return []


def _own_sections() -> dict[str, Callable[[Tenant, Any], list[str]]]:
    return {
        "servers": _apply_servers,
        "storages": _apply_storages,
        "storage_policies": _apply_storage_policies,
        "applications": _apply_applications,
    }


# Retention policies before what names them; servers and storages before applications and
# schedules; schedules last (they name applications, storages and policies).
APPLY_ORDER = ("retention_policies", "servers", "storages", "storage_policies", "applications", "schedules")


@transaction.atomic
def platform_config_apply(*, tenant: Tenant, document: dict, components: list[str] | None = None) -> dict:
    """Make the chosen components of ``tenant`` equal to ``document``'s, all or nothing.

    Rows are matched by name: changed ones are updated, missing ones created, ones absent
    from the document deleted (a server still used, a storage holding backups: refused).
    Any refusal rolls every component back. Returns ``{"components": [...], "changes": [...]}``.
    """
    available = config_components(document)
    chosen = components or available
    missing = sorted(set(chosen) - set(available))
    if missing:
        raise ValidationFailed(details={"components": [f"Not in this snapshot: {', '.join(missing)}."]})
    modules = document["modules"]
    changes: list[str] = []
    appliers = {**_own_sections(), **{name: section.apply for name, section in SECTIONS.items()}}
    unavailable = sorted(set(chosen) - set(appliers))
    if unavailable:
        raise ValidationFailed(details={"components": [f"Not restorable here: {', '.join(unavailable)}."]})

    def value_of(name: str) -> Any:
        return modules[name] if name == "storage_policies" else config_items(modules, name)

    # A server or storage that goes must first lose the schedules and sources that use it.
    for name, section in SECTIONS.items():
        if name in chosen and section.first_pass is not None:
            changes += section.first_pass(tenant, value_of(name), chosen, modules)
    for name in APPLY_ORDER:
        if name in chosen:
            changes += appliers[name](tenant, value_of(name))
    emit(
        action="config_apply",
        tenant=tenant,
        resource_type="configuration",
        resource_id=tenant.slug,
        details={"components": chosen, "changes": changes[:200]},
    )
    return {"components": chosen, "changes": sorted(set(changes))}
