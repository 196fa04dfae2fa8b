"""Each tenant's own folders on the platform's machines (DESIGN.md "Tenancy and security").

A tenant's local storages, path and SQLite sources read on the platform's own machine,
restore targets and import staging may only use that tenant's roots: what a superuser set
on the tenant (``Tenant.path_roots``), or by default ``<platform root>/<slug>`` for each
platform root (``BACKUP_LOCAL_ROOT`` and ``LOCAL_PATH_ROOTS``). Storage folders (every
tenant's local storages, and each tenant's default storage folder) are never a source or a
restore target of anyone, and a storage folder never overlaps another one or a source.

Every check resolves the path first (symlinks, ``..``) and also compares folders by device
and inode (bind mounts). Checks run when the row is written (services, so the API, the admin
and the CLI alike) and again when the work runs, so a folder that became a link since is
refused then.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings

from backupplatform import paths
from tenants.models import Tenant

from .models import Source, SourceType, Storage, StorageType
from .models.servers import ServerType

STORAGE_FOLDER = "This folder holds backups (a storage folder); it cannot be used as a source or a restore target."
OTHER_STORAGE = "This folder overlaps another storage's folder."
HOLDS_SOURCE = "This folder overlaps a folder that is backed up; choose one outside every source."
FILE_SOURCE_TYPES = (SourceType.PATH, SourceType.SQLITE)


def tenant_roots(tenant: Tenant) -> list[str]:
    """The folders ``tenant`` may use, resolved."""
    return paths.tenant_roots(tenant.slug, tenant.path_roots)


def default_storage_folder(tenant: Tenant) -> str:
    """Where a tenant's default local storage keeps its backups."""
    return os.path.join(paths.resolve(settings.BACKUP_LOCAL_ROOT), tenant.slug)


def storage_folders(*, exclude_storage_id: int | None = None) -> list[str]:
    """Every storage folder on this machine: local storages of every tenant, and each
    tenant's default storage folder (even before the storage row exists)."""
    qs = Storage.objects.filter(type=StorageType.LOCAL)
    if exclude_storage_id is not None:
        qs = qs.exclude(pk=exclude_storage_id)
    folders = {
        paths.resolve(p)
        for p in (c.get("path") for c in qs.values_list("configuration", flat=True))
        if paths.is_clean_absolute(p)
    }
    folders.update(default_storage_folder(t) for t in Tenant.objects.only("slug"))
    return sorted(folders)


def local_source_folders(*, exclude_source_id: int | None = None) -> list[str]:
    """Folders and files that sources read on this machine (every tenant's)."""
    qs = Source.objects.filter(type__in=FILE_SOURCE_TYPES).exclude(server__type=ServerType.SSH)
    if exclude_source_id is not None:
        qs = qs.exclude(pk=exclude_source_id)
    return sorted({paths.resolve(p) for p in qs.values_list("path", flat=True) if paths.is_clean_absolute(p)})


def _outside_roots_message(tenant: Tenant) -> str:
    return "Not inside this workspace's folders: " + ", ".join(tenant_roots(tenant))


def _in_own_roots(tenant: Tenant, real: str) -> bool:
    return any(paths.is_within(real, root) for root in tenant_roots(tenant))


def _other_tenants_roots(tenant: Tenant) -> list[str]:
    return [root for other in Tenant.objects.exclude(pk=tenant.pk) for root in tenant_roots(other)]


def _basic(tenant: Tenant, path: str) -> tuple[str | None, str]:
    if not paths.is_clean_absolute(path) or ".." in path.split("/"):
        return "Must be an absolute path without '..'.", ""
    real = paths.resolve(path)
    if not _in_own_roots(tenant, real):
        return _outside_roots_message(tenant), real
    others = _other_tenants_roots(tenant)
    if any(paths.overlaps(real, root) for root in others) or paths.aliases_any(real, others):
        # Only reachable when roots were set to overlap; never name the other tenant.
        return _outside_roots_message(tenant), real
    return None, real


def check_data_path(tenant: Tenant, path: str) -> str | None:
    """Why ``path`` cannot be a source, a restore target or import staging of ``tenant``
    (``None`` when it can)."""
    error, real = _basic(tenant, path)
    if error:
        return error
    folders = storage_folders() + staging_folders()
    if (
        any(paths.overlaps(real, f) for f in folders)
        or paths.aliases_any(real, folders)
        or paths.contains_alias_of(real, folders)
    ):
        return STORAGE_FOLDER
    return None


def check_storage_folder(tenant: Tenant, path: str, *, storage_id: int | None = None) -> str | None:
    """Why ``path`` cannot be the folder of a local storage of ``tenant``. The tenant's
    default storage folder (the platform's, ``BACKUP_LOCAL_ROOT/<slug>``) is always its own,
    even when a superuser set the tenant's folders elsewhere."""
    own_default = default_storage_folder(tenant)
    error, real = _basic(tenant, path)
    if error and not (paths.is_clean_absolute(path) and real == own_default):
        return error
    # A tenant's own default folder is free for its own storage of exactly that path.
    others = [f for f in storage_folders(exclude_storage_id=storage_id) if not (f == own_default == real)]
    others += staging_folders()
    if any(paths.overlaps(real, f) for f in others) or paths.aliases_any(real, others):
        return OTHER_STORAGE
    sources = local_source_folders()
    if any(paths.overlaps(real, s) for s in sources) or paths.aliases_any(real, sources):
        return HOLDS_SOURCE
    return None


def source_needs_confinement(*, type: str, server) -> bool:
    """File sources read on the platform's own machine (no server, or a ``local`` one)."""
    return type in FILE_SOURCE_TYPES and (server is None or server.type == ServerType.LOCAL)


def import_staging_dir(tenant: Tenant) -> str:
    """Where uploads of ``tenant`` wait to be checked and imported: a folder of the
    platform's (``IMPORT_STAGING_ROOT/<slug>``), never one a tenant names."""
    return os.path.join(paths.resolve(settings.IMPORT_STAGING_ROOT), tenant.slug)


def staging_folders() -> list[str]:
    return [paths.resolve(settings.IMPORT_STAGING_ROOT)]


@dataclass(frozen=True)
class Violation:
    kind: str
    pk: int
    tenant: str
    path: str
    reason: str


def violations() -> list[Violation]:
    """Existing rows that break the rules (rows written before them, or roots changed since)."""
    found: list[Violation] = []
    for storage in Storage.objects.filter(type=StorageType.LOCAL).select_related("tenant"):
        path = (storage.configuration or {}).get("path", "")
        if reason := check_storage_folder(storage.tenant, path, storage_id=storage.pk):
            found.append(Violation("storage", storage.pk, storage.tenant.slug, path, reason))
    for source in Source.objects.filter(type__in=FILE_SOURCE_TYPES).select_related("tenant", "server"):
        if not source_needs_confinement(type=source.type, server=source.server):
            continue
        if reason := check_data_path(source.tenant, source.path):
            found.append(Violation("source", source.pk, source.tenant.slug, source.path, reason))
    return found
