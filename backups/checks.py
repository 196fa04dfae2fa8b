"""System checks of the backups app (``manage.py check --database default``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Warning, register


@register("backups", "database")
def check_tenant_folders(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Warning]:
    """Rows written before the folder rules, or made invalid by a change of a tenant's
    folders since: local storages and file sources outside their tenant's folders, sources
    inside a storage folder, storages that overlap. Backups of such rows fail until fixed."""
    if not databases:  # database checks run only when asked (``--database default``)
        return []
    from django.db import DatabaseError

    from .confinement import violations

    try:
        found = violations()
    except DatabaseError as exc:  # not migrated yet, or unreachable
        return [Warning(f"Could not check tenant folders: {exc}", id="backups.W000")]
    return [
        Warning(f"{v.kind} {v.pk} of tenant '{v.tenant}' uses {v.path!r}: {v.reason}",
                hint="Move it into the tenant's own folders (Tenant.path_roots or <root>/<slug>), "
                     "away from storage folders.",
                obj=f"{v.kind}:{v.pk}", id="backups.W001")
        for v in found
    ]
