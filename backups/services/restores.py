"""Restores: stream the artifact back (storage -> decrypt -> decompress -> engine sink), into
the original or another server/database/folder, then apply masking rules to the restored copy
(db-backup-platform.md "Restore Backup"). The source of the backup is never touched."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from typing import Any

from django.db import transaction
from django.utils import timezone

from audit.services import emit, publish, stored_user
from backupplatform.errors import Conflict, NotFound, ValidationFailed
from backupplatform.isotime import utc_iso
from tenants import capabilities
from tenants.models import Tenant

from .. import compat, confinement, engines
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
from .backup_sources import connection_params
from .backups import _queue, backup_open_artifact
from .restore_options import (
    bundle_namespace,
    bundle_sources,
    check_jobs,
    check_namespace_mapping,
    check_paths,
    check_tables,
    is_plain_sql,
    namespace_suffix,
    validate_masking_rules,
)

logger = logging.getLogger(__name__)


@transaction.atomic
def restore_start(
    *,
    tenant: Tenant,
    backup: Backup,
    actor: Any = None,
    target_server: Server | None = None,
    target_database: str = "",
    target_application: Application | None = None,
    target_path: str = "",
    strategy: str = RestoreStrategy.CREATE_NEW,
    masking_rules: dict | None = None,
    options: dict | None = None,
    queue: bool = True,
    kind: str = OperationKind.RESTORE,
) -> Restore:
    """Queue a restore of ``backup``. Databases default to a new database next to the source.

    ``kind`` is the operation's (``recovery`` for the console's disaster recovery);
    ``options["members"]`` restores only those members of an application artifact.
    An imported database dump (no server of its own) needs ``target_server``."""
    capabilities.require_feature(tenant)
    if backup.tenant_id != tenant.pk:
        raise NotFound("Backup not found")
    # Locked until the restore row exists, so a delete of the backup waits for it (and then
    # sees a reader); a backup deleted meanwhile is gone.
    if not Backup.objects.select_for_update().filter(pk=backup.pk).exists():
        raise NotFound("Backup not found", code="BACKUP_NOT_FOUND")
    if backup.status != BackupStatus.COMPLETED:
        raise Conflict(
            f"Only completed backups can be restored (this one is {backup.status})", code="BACKUP_NOT_COMPLETED"
        )
    if strategy not in RestoreStrategy.values:
        raise ValidationFailed(details={"restore_strategy": [f"Must be one of: {', '.join(RestoreStrategy.values)}."]})
    masking_rules = validate_masking_rules(masking_rules)
    if target_path and (reason := confinement.check_data_path(tenant, target_path)):
        raise ValidationFailed(details={"target_path": [reason]})
    if target_server is not None and target_server.tenant_id != tenant.pk:
        raise NotFound("Target server not found")
    if backup.db_type:
        target_server = target_server or backup.server
        if target_server is None:
            raise ValidationFailed(details={"target_server_id": ["The backup's server is gone; name a target."]})
        if target_server.type != backup.db_type:
            raise ValidationFailed(
                details={
                    "target_server_id": [
                        f"A {backup.db_type} backup restores into a {backup.db_type} server, not {target_server.type}."
                    ]
                }
            )
        if not target_database:
            raise ValidationFailed(details={"target_database": ["This field is required."]})
        if (
            target_server.pk == backup.server_id
            and target_database == backup.database_name
            and strategy != RestoreStrategy.OVERWRITE
        ):
            raise ValidationFailed(
                details={"target_database": ["Restoring over the source database needs restore_strategy 'overwrite'."]}
            )
        if masking_rules and target_server.pk == backup.server_id and target_database == backup.database_name:
            raise ValidationFailed(
                details={
                    "masking_rules": [
                        "Masking runs on a restored copy: choose another target database than the source."
                    ]
                }
            )
    report = restore_compatibility(backup=backup, target_server=target_server)
    if report.errors:
        raise ValidationFailed(
            " ".join(report.errors),
            code="RESTORE_INCOMPATIBLE",
            details={"target_server_id" if backup.server_id else "backup_id": report.errors},
        )
    options = dict(options or {})
    if options.get("jobs") is not None:
        options["jobs"] = check_jobs(backup, options["jobs"])
    if options.get("namespace_mapping"):
        options["namespace_mapping"] = check_namespace_mapping(tenant, backup, options["namespace_mapping"])
    if options.get("tables") is not None:
        options["tables"] = check_tables(backup, options["tables"])
    if options.get("paths") is not None:
        options["paths"] = check_paths(backup, options["paths"])
    op = operations.operation_create(tenant=tenant, kind=kind, actor=actor, backup=backup)
    restore = Restore.objects.create(
        tenant=tenant,
        backup=backup,
        operation=op,
        application=backup.application,
        target_application=target_application or backup.application,
        target_server=target_server,
        target_database=target_database,
        target_path=target_path,
        strategy=strategy,
        masking_rules=masking_rules,
        options=options,
        result={"compatibility": report.as_dict()},
        created_by=stored_user(actor),
    )
    emit(
        action="restore_create",
        tenant=tenant,
        resource_type="restore",
        resource_id=restore.pk,
        details={
            "backup_id": backup.pk,
            "target_database": target_database,
            "strategy": strategy,
            "masked_columns": sorted(masking_rules),
            "warnings": report.warnings,
        },
    )
    if queue:  # the CLI runs the work in its own process instead
        _queue("backups.tasks.run_restore", op)
    return restore


#: The most connections a parallel restore may use (``pg_restore --jobs``).
def restore_compatibility(*, backup: Backup, target_server: Server | None) -> compat.Compatibility:
    """Judge the backup's recorded versions against the servers it would restore into: the
    target server of a database backup, each database source's server of an application."""
    report = compat.Compatibility()

    def check(engine: str, source: dict, server: Server, name: str) -> None:
        try:
            params = connection_params(server, "")
        except ValidationFailed:  # the network policy: the restore itself refuses it with the reason
            return
        compat.check_target(engine=engine, source=source, params=params, name=name, report=report)

    if backup.server_id or backup.db_type:
        if target_server is not None:
            check(backup.db_type, backup.manifest.get("source") or {}, target_server, "")
        return report
    bundle = backup.manifest.get("bundle") or {}
    infos = {m.get("name"): m.get("info") or {} for m in bundle.get("members") or []}
    for item in bundle.get("sources") or []:
        if item.get("type") not in (SourceType.POSTGRESQL, SourceType.MYSQL) or backup.application is None:
            continue
        source = backup.application.sources.filter(name=item.get("name")).select_related("server").first()
        if source is None or source.server is None:
            continue
        check(item["type"], infos.get(item.get("member"), {}), source.server, item.get("name") or "")
    return report


def restore_warnings(restore: Restore) -> list[str]:
    """What the compatibility check said before the restore was queued."""
    return list(((restore.result or {}).get("compatibility") or {}).get("warnings") or [])


# Progress of a masked database restore: the data 0-80 %, masking 80-98 %, the swap 99 %,
# done 100 % (an unmasked restore reports bytes 0-99 % through the reporter itself).
RESTORE_END, MASK_START, MASK_END, SWAP = 80, 80, 98, 99


def _record_staging(restore: Restore, server: Server, target: str) -> str:
    """Pick the staging database name for ``target`` and store it on the restore **before** it
    exists, so a worker killed at any moment leaves a name ``restore_discard_staging`` finds."""
    name = engines.staging_name(target)
    staging = [*restore.result.get("staging", []), {"server_id": server.pk, "database": name}]
    restore.result = {**restore.result, "staging": staging}
    Restore.objects.filter(pk=restore.pk).update(result=restore.result)
    return name


def _masking_step(
    restore: Restore,
    reporter: ProgressReporter,
    *,
    target: str,
    record: dict,
    start: int | None = None,
    end: int | None = None,
):
    """The ``prepare`` step of a staged restore: mask the staging copy, reporting each table.

    Progress moves from ``start`` to ``end`` (default: where it is, for members of an
    application restore). Any masking error raises, so the engine drops the staging copy and
    the target never shows unmasked data.
    """

    def prepare(staging: engines.ConnectionParams) -> None:
        low = reporter.op.progress if start is None else start
        high = max(low, reporter.op.progress if end is None else end)
        shown = {"progress": low, "table": None, "at": time.monotonic()}
        reporter.step("masking_data", progress=low, component=target[:100])

        def table_name(key: str) -> str:  # MySQL names tables by the (staging) database
            return f"{target}.{key[len(staging.database) + 1 :]}" if key.startswith(f"{staging.database}.") else key

        def on_progress(where) -> None:
            if reporter.cancelled():
                raise engines.EngineError("Cancelled", code="cancelled")
            percent = max(shown["progress"], low + int((high - low) * where.fraction))
            now = time.monotonic()
            if percent > shown["progress"] or (
                where.table != shown["table"] and now - shown["at"] >= reporter.interval
            ):
                shown.update(progress=percent, table=where.table, at=now)
                reporter.step("masking_data", progress=percent, component=table_name(where.table)[:100])

        masking = engines.apply_masking(staging, restore.masking_rules, progress=on_progress)
        masking["tables"] = {table_name(k): v for k, v in masking["tables"].items()}
        for item in masking["skipped"] + masking["errors"]:
            item["table"] = table_name(item["table"])
        record.update(masking)
        if masking["errors"]:
            failed = ", ".join(f"{e.get('table')}: {e.get('error', '')[:200]}" for e in masking["errors"])
            raise engines.EngineError(
                f"Masking failed; nothing was restored into {target!r} ({failed})", code="masking_failed"
            )
        if end is not None:
            reporter.step("swapping_in", progress=SWAP, component=target[:100])

    return prepare


def _database_sink(restore: Restore, *, prepare=None, staging: str | None = None):
    server = restore.target_server
    params = connection_params(server, restore.target_database)
    overwrite = restore.strategy == RestoreStrategy.OVERWRITE
    strategy = "overwrite" if overwrite else "create_new"
    if server.type == ServerType.POSTGRESQL:
        # An imported plain-SQL pg_dump goes through psql instead of pg_restore.
        plain = is_plain_sql(restore.backup)
        jobs = int((restore.options or {}).get("jobs") or 1)
        return engines.pg_restore_sink(
            params,
            strategy=strategy,
            create_database=True,
            prepare=prepare,
            staging=staging,
            plain=plain,
            jobs=jobs,
            spool_size=restore.backup.size_bytes or None,
            tables=(restore.options or {}).get("tables") or None,
        )
    return engines.mysql_restore_sink(params, strategy=strategy, create_database=True, prepare=prepare, staging=staging)


def _path_target(restore: Restore, item: dict, *, several: bool) -> str:
    """Where a folder (or file) source of an application artifact is restored."""
    mapping = restore.options.get("namespace_mapping") or {}
    if item.get("path") in mapping:
        return mapping[item["path"]]
    namespace = bundle_namespace(restore.backup)
    if namespace and namespace in mapping and not restore.target_path:
        return f"{item['path'].rstrip('/')}.{mapping[namespace]}"
    if restore.target_path:
        if not several:
            return restore.target_path
        # Several folders into one target: each gets a sub-folder named after its source.
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", item.get("name") or "").strip("._") or item["member"]
        return os.path.join(restore.target_path, name)
    path = item["path"]
    if restore.strategy != RestoreStrategy.OVERWRITE:
        return f"{path.rstrip('/')}.restored-{restore.pk}"
    # In place: a folder's contents go back into it, a single file into its folder.
    if item["type"] == SourceType.SQLITE or (os.path.lexists(path) and not os.path.isdir(path)):
        return os.path.dirname(path.rstrip("/")) or "/"
    return path


def _database_target(restore: Restore, database: str) -> str:
    """The name a database of an application artifact is restored under."""
    mapping = restore.options.get("namespace_mapping") or {}
    if database in mapping:
        return mapping[database]
    namespace = bundle_namespace(restore.backup)
    if namespace and namespace in mapping:
        return f"{database}_{namespace_suffix(mapping[namespace])}"
    overwrite = restore.strategy == RestoreStrategy.OVERWRITE
    suffix = restore.options.get("database_suffix") or ("" if overwrite else f"_restored_{restore.pk}")
    return f"{database}{suffix}"


def _bundle_handlers(restore: Restore, reporter: ProgressReporter, masking: dict, targets: dict | None = None) -> dict:
    """Sink factories for each member of an application artifact; ``targets`` gets, per
    member, what it is and where it goes (``{"type", "name", "original_name"}``)."""
    backup = restore.backup
    handlers: dict[str, Any] = {}
    targets = {} if targets is None else targets
    overwrite = restore.strategy == RestoreStrategy.OVERWRITE
    strategy = "overwrite" if overwrite else "create_new"
    bundle = backup.manifest.get("bundle", {}) or {}
    members = {m.get("name"): m.get("info") or {} for m in bundle.get("members") or []}
    items = bundle_sources(backup)
    only = restore.options.get("members")
    if only is not None:
        items = [item for item in items if item["member"] in only]
    several = sum(item["type"] in (SourceType.PATH, SourceType.SQLITE) for item in items) > 1
    for item in items:
        member, kind = item["member"], item["type"]
        if kind in (SourceType.POSTGRESQL, SourceType.MYSQL):
            source = (
                backup.application.sources.filter(name=item["name"]).select_related("server").first()
                if backup.application
                else None
            )
            if source is None or source.server is None:
                continue
            database = _database_target(restore, item["database"])
            targets[member] = {"type": "database", "name": database, "original_name": item["database"]}
            params = connection_params(source.server, database)
            factory = engines.pg_restore_sink if kind == SourceType.POSTGRESQL else engines.mysql_restore_sink

            def make(f=factory, p=params, server=source.server, database=database):
                if not restore.masking_rules:
                    return f(p, strategy=strategy, create_database=True)
                record = masking.setdefault(database, {})
                return f(
                    p,
                    strategy=strategy,
                    create_database=True,
                    prepare=_masking_step(restore, reporter, target=database, record=record),
                    staging=_record_staging(restore, server, database),
                )

            handlers[member] = make
        elif kind in (SourceType.PATH, SourceType.SQLITE):
            target = _path_target(restore, item, several=several)
            if reason := confinement.check_data_path(restore.tenant, target):
                raise ValidationFailed(details={"target_path": [reason]})
            targets[member] = {
                "type": "file" if kind == SourceType.SQLITE else "folder",
                "name": target,
                "original_name": item["path"],
            }
            info = members.get(member, {})
            paths = info.get("paths") or [item["path"]]
            # Restore relative to the backed-up folder (its tar names members by their path
            # below "/"); a member made from several paths keeps its stored layout.
            source_path, root = (paths[0] if len(paths) == 1 else None), info.get("root") or "/"
            only = (restore.options or {}).get("paths") if kind == SourceType.PATH else None
            handlers[member] = lambda t=target, s=source_path, r=root, o=only: engines.tar_restore_sink(
                t, strategy=strategy, source=s, root=r, only=o
            )
        elif kind == SourceType.PLATFORM_CONFIG:
            handlers[member] = engines.config_restore_sink
            targets[member] = {
                "type": "configuration",
                "name": item.get("name") or member,
                "original_name": item.get("name") or member,
            }
    return handlers


def restore_run(*, operation_id: int) -> Restore | None:
    op = operations.operation_claim(operation_id=operation_id)
    if op is None:
        return None
    restore = Restore.objects.select_related(
        "backup", "backup__storage", "backup__tenant", "target_server", "backup__application"
    ).get(operation=op)
    backup = restore.backup
    now = timezone.now()
    Restore.objects.filter(pk=restore.pk).update(status=OperationStatus.RUNNING, started_at=now)
    restore.started_at = now
    masked = bool(restore.masking_rules)
    # A masked restore's bytes move the bar to RESTORE_END; masking and the swap take the rest.
    reporter = ProgressReporter(op, total=backup.size_bytes or None, span=(2, RESTORE_END) if masked else (0, 100))
    backend = reader = sink = None
    result: dict[str, Any] = {}
    try:
        key = key_for_id(backup.tenant, backup.key_id)
        reporter.step("downloading", progress=1)
        backend, reader = backup_open_artifact(backup=backup)
        plaintext = restore_stream(reader, key)
        if backup.db_type:
            reporter.step("restoring_data", progress=2, component=restore.target_database)
            prepare = staging = None
            if masked:
                result["masking"] = {}
                prepare = _masking_step(
                    restore,
                    reporter,
                    target=restore.target_database,
                    record=result["masking"],
                    start=MASK_START,
                    end=MASK_END,
                )
                staging = _record_staging(restore, restore.target_server, restore.target_database)
            sink = _database_sink(restore, prepare=prepare, staging=staging)
            counter = _CountingIter(plaintext, reporter)
            for piece in counter:
                sink.write(piece)
            if (restore.options or {}).get("jobs", 1) > 1:  # the dump is on disk: the parallel load
                reporter.step("loading_in_parallel", component=restore.target_database)
            # Restores into the staging database (when masking), masks there, then swaps it in.
            result["restore"] = sink.finish()
            sink = None
            result["restored"] = {"server_id": restore.target_server_id, "database": restore.target_database}
        else:
            reporter.step("restoring_data", progress=2, component=backup.application.name if backup.application else "")
            if masked:
                result["masking"] = {}
            counter = _CountingIter(plaintext, reporter)
            result["targets"] = {}
            result["restore"] = engines.bundle_restore(
                counter, _bundle_handlers(restore, reporter, result.get("masking", {}), result["targets"])
            )
    except Exception as exc:  # recorded on the rows; the target's partial state is reported
        if sink is not None:
            with contextlib.suppress(Exception):
                sink.abort()
        cancelled = reporter.cancelled()
        message = "Cancelled" if cancelled else (getattr(exc, "message", None) or str(exc) or exc.__class__.__name__)
        logger.warning("restore %s failed: %s", restore.pk, message)
        return _restore_end(
            op, restore, OperationStatus.CANCELLED if cancelled else OperationStatus.FAILED, message[:2000], result
        )
    finally:
        for closable in (reader, backend):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()
    return _restore_end(op, restore, OperationStatus.COMPLETED, "", result)


def restore_discard_staging(*, restore: Restore) -> list[str]:
    """Drop the staging databases a restore recorded, unless it is still running.

    For the reaper: a worker killed during a masked restore leaves its staging database
    (unmasked data, never under the target's name); call this once the restore's operation
    has been failed. Idempotent; returns the names dropped.
    """
    op = restore.operation
    if op is not None and op.status in operations.ACTIVE:
        return []
    dropped = []
    for entry in restore.result.get("staging", []):
        server = Server.objects.filter(tenant=restore.tenant, pk=entry.get("server_id")).first()
        if server is None:
            continue
        params = connection_params(server, "")
        dropped += engines.cleanup_staging(params, names=[entry["database"]])
    if dropped:
        emit(
            action="restore_staging_dropped",
            tenant=restore.tenant,
            resource_type="restore",
            resource_id=restore.pk,
            details={"databases": dropped},
        )
    return dropped


class _CountingIter:
    """Feeds progress (bytes, throughput, percent within the reporter's span) and the cancel
    check while the artifact streams into the sinks."""

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
    if restore.result.get("staging"):  # kept for restore_discard_staging
        result = {**result, "staging": restore.result["staging"]}
    if restore.result.get("compatibility"):  # what was checked and warned about before it ran
        result = {**result, "compatibility": restore.result["compatibility"]}
    now = timezone.now()
    errors_before = op.errors

    def record() -> None:  # one commit for both rows
        op.errors = errors_before
        with transaction.atomic():
            Restore.objects.filter(pk=restore.pk).update(
                status=status, completed_at=now, error_message=error, result=result
            )
            operations.operation_finish(op=op, status=status, error=error, step=status, details={"result": result})

    operations.with_db_retry(record, what=f"recording the outcome of restore {op.public_id}")
    restore.status, restore.completed_at, restore.error_message, restore.result = status, now, error, result
    event = {
        "type": f"restore_{status}",
        "restore_id": op.public_id,
        "backup_id": restore.backup_id,
        "timestamp": utc_iso(now, micro=True),
    }
    if error:
        event["error"] = error
    publish(tenant_id=restore.tenant_id, event=event)
    emit(
        action=f"restore_{status}",
        tenant=restore.tenant,
        resource_type="restore",
        resource_id=restore.pk,
        details={"error": error, "masked": bool(result.get("masking"))},
    )
    return restore
