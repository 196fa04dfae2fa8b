"""System checks of the backups app (``manage.py check --database default``)."""

from __future__ import annotations

from typing import Any

from django.core.checks import Error, Warning, register

from .confinement import violations
from .keys import KEY_HINT, key_problems
from .models import Storage


@register("backups", "database")
def check_tenant_folders(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[Warning]:
    """Rows written before the folder rules, or made invalid by a change of a tenant's
    folders since: local storages and file sources outside their tenant's folders, sources
    inside a storage folder, storages that overlap. Backups of such rows fail until fixed."""
    if not databases:  # database checks run only when asked (``--database default``)
        return []
    from django.db import DatabaseError, connection

    try:
        if Storage._meta.db_table not in connection.introspection.table_names():
            return []  # not migrated yet (``migrate`` runs the checks first): nothing to check
        found = violations()
    except DatabaseError as exc:  # not migrated yet, or unreachable
        return [Warning(f"Could not check tenant folders: {exc}", id="backups.W000")]
    return [
        Warning(
            f"{v.kind} {v.pk} of tenant '{v.tenant}' uses {v.path!r}: {v.reason}",
            hint="Move it into the tenant's own folders (Tenant.path_roots or <root>/<slug>), "
            "away from storage folders.",
            obj=f"{v.kind}:{v.pk}",
            id="backups.W001",
        )
        for v in found
    ]


@register("backups")
def check_backup_keys(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Every wrapped tenant key must open with the configured master key.

    Not a ``database``-tagged check on purpose: it must stop ``runserver``, ``migrate`` and
    every command that would otherwise fail later with "wrapped key failed authentication"
    (or, worse, in local mode, generate a master key that opens nothing). A database that
    is unreachable or not migrated yet is not this check's business.
    """
    from django.db import DatabaseError

    try:
        problems = key_problems()
    except DatabaseError:
        return []
    return [Error(problem, hint=KEY_HINT, id="backups.E001") for problem in problems]
