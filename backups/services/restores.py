"""Restores: stream the artifact back (storage -> decrypt -> decompress -> engine sink), into
the original or another server/database/folder, then apply masking rules to the restored copy
(db-backup-platform.md "Restore Backup"). The source of the backup is never touched."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import emit, publish
from backupplatform.errors import Conflict, NotFound, ValidationFailed
from tenants.models import Tenant

from .. import confinement
from .. import engine_api as engines
from ..keys import key_for_id
from ..models import (
    Application,
    Backup,
    BackupStatus,
    OperationKind,
    OperationStatus,
    Restore,
    RestoreStrategy,
    Server,
    ServerType,
    SourceType,
)
from ..pipeline import restore_stream
from ..progress import ProgressReporter
from . import operations
from .backups import _queue, backup_open_artifact, connection_params

logger = logging.getLogger(__name__)

MASKING_RULES = ("hash", "randomize", "null")


def validate_masking_rules(rules: Any) -> dict:
    if rules in (None, {}):
        return {}
    if not isinstance(rules, dict):
        raise ValidationFailed(details={"masking_rules": ["Must be an object of column name to rule."]})
    errors = {}
    for column, rule in rules.items():
        ok = rule in MASKING_RULES or (isinstance(rule, str) and rule.startswith("fixed:")) or (
            isinstance(rule, dict) and rule.get("type") == "fixed" and isinstance(rule.get("value"), str | int | float))
        if not ok or not str(column).strip():
            errors[f"masking_rules.{column}"] = [
                "Use 'hash', 'randomize', 'null', 'fixed:<value>' or {\"type\": \"fixed\", \"value\": ...}."]
    if errors:
        raise ValidationFailed(details=errors)
    return rules


@transaction.atomic
def restore_start(*, tenant: Tenant, backup: Backup, actor: Any = None, target_server: Server | None = None,
                  target_database: str = "", target_application: Application | None = None,
                  target_path: str = "", strategy: str = RestoreStrategy.CREATE_NEW,
                  masking_rules: dict | None = None, options: dict | None = None, queue: bool = True) -> Restore:
    """Queue a restore of ``backup``. Databases default to a new database next to the source."""
    if backup.tenant_id != tenant.pk:
        raise NotFound("Backup not found")
    if backup.status != BackupStatus.COMPLETED:
        raise Conflict(f"Only completed backups can be restored (this one is {backup.status})",
                       code="BACKUP_NOT_COMPLETED")
    if strategy not in RestoreStrategy.values:
        raise ValidationFailed(details={"restore_strategy": [f"Must be one of: {', '.join(RestoreStrategy.values)}."]})
    masking_rules = validate_masking_rules(masking_rules)
    if target_path and (reason := confinement.check_data_path(tenant, target_path)):
        raise ValidationFailed(details={"target_path": [reason]})
    if target_server is not None and target_server.tenant_id != tenant.pk:
        raise NotFound("Target server not found")
    if backup.server_id:
        target_server = target_server or backup.server
        if target_server is None:
            raise ValidationFailed(details={"target_server_id": ["The backup's server is gone; name a target."]})
        if target_server.type != backup.db_type:
            raise ValidationFailed(details={"target_server_id": [
                f"A {backup.db_type} backup restores into a {backup.db_type} server, not {target_server.type}."]})
        if not target_database:
            raise ValidationFailed(details={"target_database": ["This field is required."]})
        if (target_server.pk == backup.server_id and target_database == backup.database_name
                and strategy != RestoreStrategy.OVERWRITE):
            raise ValidationFailed(details={"target_database": [
                "Restoring over the source database needs restore_strategy 'overwrite'."]})
        if masking_rules and target_server.pk == backup.server_id and target_database == backup.database_name:
            raise ValidationFailed(details={"masking_rules": [
                "Masking runs on a restored copy: choose another target database than the source."]})
    op = operations.operation_create(tenant=tenant, kind=OperationKind.RESTORE, actor=actor, backup=backup)
    restore = Restore.objects.create(
        tenant=tenant, backup=backup, operation=op, application=backup.application,
        target_application=target_application or backup.application, target_server=target_server,
        target_database=target_database, target_path=target_path, strategy=strategy,
        masking_rules=masking_rules, options=options or {},
        created_by=actor if getattr(actor, "pk", None) else None)
    emit(action="restore_create", tenant=tenant, resource_type="restore", resource_id=restore.pk,
         details={"backup_id": backup.pk, "target_database": target_database, "strategy": strategy,
                  "masked_columns": sorted(masking_rules)})
    if queue:  # the CLI runs the work in its own process instead
        _queue("backups.tasks.run_restore", op)
    return restore


def _database_sink(restore: Restore):
    server = restore.target_server
    params = connection_params(server, restore.target_database)
    overwrite = restore.strategy == RestoreStrategy.OVERWRITE
    strategy = "overwrite" if overwrite else "create_new"
    if server.type == ServerType.POSTGRESQL:
        return engines.pg_restore_sink(params, strategy=strategy, create_database=True)
    return engines.mysql_restore_sink(params, strategy=strategy, create_database=True)


def _bundle_handlers(restore: Restore) -> dict:
    """Sink factories for each member of an application artifact."""
    backup = restore.backup
    handlers: dict[str, Any] = {}
    overwrite = restore.strategy == RestoreStrategy.OVERWRITE
    suffix = restore.options.get("database_suffix") or ("" if overwrite else f"_restored_{restore.pk}")
    for item in (backup.manifest.get("bundle", {}) or {}).get("sources") or backup.manifest.get("source", {}).get(
            "sources", []):
        member, kind = item["member"], item["type"]
        if kind in (SourceType.POSTGRESQL, SourceType.MYSQL):
            source = backup.application.sources.filter(name=item["name"]).select_related("server").first() \
                if backup.application else None
            if source is None or source.server is None:
                continue
            params = connection_params(source.server, f"{item['database']}{suffix}")
            factory = engines.pg_restore_sink if kind == SourceType.POSTGRESQL else engines.mysql_restore_sink
            handlers[member] = (lambda f=factory, p=params: f(p, strategy="overwrite" if overwrite else "create_new",
                                                              create_database=True))
        elif kind in (SourceType.PATH, SourceType.SQLITE):
            target = restore.target_path or (item["path"] if overwrite else f"{item['path']}.restored-{restore.pk}")
            if reason := confinement.check_data_path(restore.tenant, target):
                raise ValidationFailed(details={"target_path": [reason]})
            handlers[member] = (lambda t=target: engines.tar_restore_sink(t, strategy="overwrite" if overwrite else "create_new"))
        elif kind == SourceType.PLATFORM_CONFIG:
            handlers[member] = engines.config_collector
    return handlers


def restore_run(*, operation_id: int) -> Restore | None:
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        return None
    restore = Restore.objects.select_related("backup", "backup__storage", "backup__tenant", "target_server",
                                            "backup__application").get(operation=op)
    backup = restore.backup
    now = timezone.now()
    Restore.objects.filter(pk=restore.pk).update(status=OperationStatus.RUNNING, started_at=now)
    restore.started_at = now
    reporter = ProgressReporter(op, total=backup.size_bytes or None)
    backend = reader = sink = None
    result: dict[str, Any] = {}
    try:
        key = key_for_id(backup.tenant, backup.key_id)
        reporter.step("downloading", progress=1)
        backend, reader = backup_open_artifact(backup=backup)
        plaintext = restore_stream(reader, key)
        done = 0
        if backup.server_id:
            reporter.step("restoring_data", progress=2, component=restore.target_database)
            sink = _database_sink(restore)
            for piece in plaintext:
                sink.write(piece)
                done += len(piece)
                reporter.update(done)
                if reporter.cancelled():
                    raise engines.EngineError("Cancelled")
            result["restore"] = sink.finish()
            sink = None
            result["restored"] = {"server_id": restore.target_server_id, "database": restore.target_database}
            if restore.masking_rules:
                reporter.step("masking", progress=95)
                params = connection_params(restore.target_server, restore.target_database)
                result["masking"] = engines.apply_masking(params, restore.masking_rules)
                if result["masking"].get("errors"):
                    # An unmasked copy of sensitive data must not stay behind: drop it.
                    engines.drop_database(params)
                    result["restored"]["dropped"] = True
                    failed = ", ".join(f"{e.get('table')}: {e.get('error', '')[:200]}" for e in result["masking"]["errors"])
                    raise engines.EngineError(f"Masking failed, the restored copy was dropped ({failed})")
        else:
            reporter.step("restoring_data", progress=2, component=backup.application.name if backup.application else "")
            counter = _CountingIter(plaintext, reporter)
            result["restore"] = engines.bundle_restore(counter, _bundle_handlers(restore))
    except Exception as exc:  # recorded on the rows; the target's partial state is reported
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.abort()
        cancelled = reporter.cancelled()
        message = "Cancelled" if cancelled else (getattr(exc, "message", None) or str(exc) or exc.__class__.__name__)
        logger.warning("restore %s failed: %s", restore.pk, message)
        return _restore_end(op, restore, OperationStatus.CANCELLED if cancelled else OperationStatus.FAILED,
                            message[:2000], result)
    finally:
        for closable in (reader, backend):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
    return _restore_end(op, restore, OperationStatus.COMPLETED, "", result)


class _CountingIter:
    """Feeds progress and the cancel check while a bundle is restored."""

    def __init__(self, pieces, reporter: ProgressReporter):
        self.pieces, self.reporter, self.done = iter(pieces), reporter, 0

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        if self.reporter.cancelled():
            raise engines.EngineError("Cancelled")
        piece = next(self.pieces)
        self.done += len(piece)
        self.reporter.update(self.done)
        return piece


def _restore_end(op, restore: Restore, status: str, error: str, result: dict) -> Restore:
    now = timezone.now()
    Restore.objects.filter(pk=restore.pk).update(status=status, completed_at=now, error_message=error, result=result)
    restore.status, restore.completed_at, restore.error_message, restore.result = status, now, error, result
    operations.operation_finish(op=op, status=status, error=error, step=status, details={"result": result})
    event = {"type": f"restore_{status}", "restore_id": op.public_id, "backup_id": restore.backup_id,
             "timestamp": now.isoformat().replace("+00:00", "Z")}
    if error:
        event["error"] = error
    publish(tenant_id=restore.tenant_id, event=event)
    emit(action=f"restore_{status}", tenant=restore.tenant, resource_type="restore", resource_id=restore.pk,
         details={"error": error, "masked": bool(result.get("masking"))})
    return restore
