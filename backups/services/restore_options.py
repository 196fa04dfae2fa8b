"""What a restore may be asked for, checked before anything runs: masking rules, the
namespace mapping of an application restore, parallel jobs and a table subset."""

from __future__ import annotations

import re
from typing import Any

from backupplatform.errors import ValidationFailed
from tenants.models import Tenant

from .. import confinement, engines
from ..models import Backup, ServerType, SourceType

MASKING_RULES = ("hash", "randomize", "null")


def validate_masking_rules(rules: Any) -> dict:
    if rules in (None, {}):
        return {}
    if not isinstance(rules, dict):
        raise ValidationFailed(details={"masking_rules": ["Must be an object of column name to rule."]})
    errors = {}
    for column, rule in rules.items():
        ok = (
            rule in MASKING_RULES
            or (isinstance(rule, str) and rule.startswith("fixed:"))
            or (
                isinstance(rule, dict)
                and rule.get("type") == "fixed"
                and isinstance(rule.get("value"), str | int | float)
            )
        )
        if not ok or not str(column).strip():
            errors[f"masking_rules.{column}"] = [
                "Use 'hash', 'randomize', 'null', 'fixed:<value>' or {\"type\": \"fixed\", \"value\": ...}."
            ]
    if errors:
        raise ValidationFailed(details=errors)
    return rules


DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}")


def namespace_suffix(namespace: str) -> str:
    """A namespace as a database name suffix: letters, digits and underscores."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", namespace).strip("_")


def bundle_sources(backup: Backup) -> list[dict]:
    bundle = backup.manifest.get("bundle", {}) or {}
    return bundle.get("sources") or backup.manifest.get("source", {}).get("sources", []) or []


def bundle_namespace(backup: Backup) -> str:
    application = (backup.manifest.get("bundle", {}) or {}).get("application") or {}
    return application.get("namespace") or (backup.application.namespace if backup.application else "") or ""


def check_namespace_mapping(tenant: Tenant, backup: Backup, mapping: Any) -> dict[str, str]:
    """workspace-backup-api.md "Restore Backup" ``namespace_mapping``: each key is the backed-up
    application's namespace, one of its databases or one of its folders; nothing is ignored.

    - ``{"<namespace>": "<new namespace>"}``: every database and folder of the application comes
      back named after the new namespace (``<database>_<new_namespace>``, ``<folder>.<new
      namespace>``) instead of the ``_restored_<id>`` suffix;
    - ``{"<database>": "<new database>"}`` and ``{"<folder>": "<new folder>"}``: that one
      comes back under the given name (a key for a source wins over the namespace's).
    """
    if not isinstance(mapping, dict):
        raise ValidationFailed(details={"namespace_mapping": ["Must be an object of old name to new name."]})
    if not backup.application_id:
        raise ValidationFailed(
            details={
                "namespace_mapping": ["Only application backups have namespaces; name the target database instead."]
            }
        )
    namespace = bundle_namespace(backup)
    sources = bundle_sources(backup)
    databases = {s.get("database") for s in sources if s.get("type") in (SourceType.POSTGRESQL, SourceType.MYSQL)}
    folders = {s.get("path") for s in sources if s.get("type") in (SourceType.PATH, SourceType.SQLITE)}
    errors: dict[str, list[str]] = {}
    for old, new in mapping.items():
        where = f"namespace_mapping.{old}"
        if not isinstance(new, str) or not new.strip():
            errors[where] = ["The new name must be a non-empty string."]
        elif old and old == namespace:
            if not namespace_suffix(new):
                errors[where] = ["The new namespace needs at least one letter or digit."]
            elif any(len(f"{d}_{namespace_suffix(new)}") > 63 for d in databases if d):
                errors[where] = ["Database names would pass 63 characters with this namespace."]
        elif old in databases:
            if not DATABASE_NAME.fullmatch(new):
                errors[where] = ["Use letters, digits, '_', '-' or '$' (at most 63 characters)."]
            elif new in databases:
                errors[where] = ["A backed-up database cannot be a restore target: choose a new name."]
        elif old in folders:
            if reason := confinement.check_data_path(tenant, new):
                errors[where] = [reason]
        else:
            known = [f"namespace {namespace!r}"] if namespace else []
            known += [f"database {d!r}" for d in sorted(d for d in databases if d)]
            known += [f"folder {f!r}" for f in sorted(f for f in folders if f)]
            errors[where] = [
                f"{old!r} is no namespace, database or folder of this backup"
                + (f" ({', '.join(known)})." if known else ".")
            ]
    if errors:
        raise ValidationFailed(details=errors)
    return {str(k): v for k, v in mapping.items()}


MAX_RESTORE_JOBS = 16


def is_plain_sql(backup: Backup) -> bool:
    return (backup.manifest.get("source") or {}).get("format") == "plain"


def check_jobs(backup: Backup, jobs: Any) -> int:
    """``jobs`` > 1 restores a PostgreSQL database in parallel: the decrypted dump is first
    written to a temporary file (its size is checked to fit when the restore runs), then
    loaded by ``pg_restore --jobs``."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_RESTORE_JOBS:
        raise ValidationFailed(details={"jobs": [f"A whole number from 1 to {MAX_RESTORE_JOBS}."]})
    if jobs > 1 and (backup.db_type != ServerType.POSTGRESQL or is_plain_sql(backup)):
        raise ValidationFailed(
            details={"jobs": ["Parallel restore is for PostgreSQL database backups in pg_dump's custom format."]}
        )
    return jobs


def check_tables(backup: Backup, tables: Any) -> list[str] | None:
    """``tables``: restore only these tables of a PostgreSQL backup (``schema.table`` or ``table``),
    with their indexes, constraints and sequences; checked against the dump when it runs."""
    if isinstance(tables, str):
        tables = [t for t in (part.strip() for part in tables.replace("\n", ",").split(",")) if t]
    if not isinstance(tables, list) or not all(isinstance(t, str) and 0 < len(t.strip()) <= 200 for t in tables):
        raise ValidationFailed(details={"tables": ["A list of table names (schema.table or table)."]})
    if not tables:
        return None
    if backup.db_type != ServerType.POSTGRESQL or is_plain_sql(backup):
        raise ValidationFailed(
            details={"tables": ["Tables can be chosen from PostgreSQL database backups in pg_dump's custom format."]}
        )
    return sorted({t.strip() for t in tables})


MAX_RESTORE_PATHS = 100


def check_paths(backup: Backup, paths: Any) -> list[str] | None:
    """``paths``: restore only these files or folders of the backup's folder sources (relative
    to each backed-up folder; ``fnmatch`` patterns allowed); checked against the archive as
    it is read."""
    if isinstance(paths, str):
        paths = [line for line in (part.strip() for part in paths.splitlines()) if line]
    if not isinstance(paths, list) or len(paths) > MAX_RESTORE_PATHS or not all(isinstance(p, str) for p in paths):
        raise ValidationFailed(details={"paths": [f"A list of up to {MAX_RESTORE_PATHS} paths."]})
    if not paths:
        return None
    if not any(s.get("type") == SourceType.PATH for s in bundle_sources(backup)):
        raise ValidationFailed(details={"paths": ["Files can be chosen from backups of folders."]})
    try:
        return engines.only_patterns(paths)
    except engines.EngineError as exc:
        raise ValidationFailed(details={"paths": [exc.message]}) from None
