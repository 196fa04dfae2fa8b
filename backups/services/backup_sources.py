"""What a backup reads: the database dump, or an application's sources bundled in one
stream, the size it is expected to have (for percent, ETA and quotas), and what the backup
records of the artifact it became."""

from __future__ import annotations

import logging

from backupplatform import netpolicy
from backupplatform.errors import ValidationFailed

from .. import compat, confinement, engines
from ..connectivity import list_databases
from ..models import Backup, BackupStatus, Server, ServerType, Source, SourceType
from ..pipeline import PipelineResult
from .config import platform_config_export

logger = logging.getLogger(__name__)


def connection_params(server: Server, database: str) -> engines.ConnectionParams:
    """How to reach ``database`` on ``server``; the network policy is checked again here,
    right before pg_dump, mysqldump or a restore connects."""
    if reason := netpolicy.host_refusal(server.host, server.port):
        raise ValidationFailed(
            f"Server '{server.name}' ({server.host}:{server.port}) is not allowed as a target: {reason}",
            details={"host": [reason]},
        )
    creds = server.credentials or {}
    return engines.ConnectionParams(
        type=server.type,
        host=server.host,
        port=server.port,
        username=creds.get("username") or "",
        password=creds.get("password") or "",
        database=database,
    )


def database_source(params: engines.ConnectionParams):
    """The dump of one database, its info completed with what a restore needs to judge it
    (server version, encoding, collation, size: ``compat.database_facts``)."""
    source = engines.pg_dump_source(params) if params.is_postgres else engines.mysqldump_source(params)
    source.info.update({k: v for k, v in compat.database_facts(params).items() if k not in source.info})
    return source


def _source_factory(backup: Backup, source: Source):
    """A zero-argument factory of the engine stream for one application source."""
    if source.type in (SourceType.POSTGRESQL, SourceType.MYSQL):
        params = connection_params(source.server, source.database_name)
        return lambda: database_source(params)
    if source.type == SourceType.PATH:
        return lambda: engines.tar_source([source.path], include=source.include or [], exclude=source.exclude or [])
    if source.type == SourceType.SQLITE:
        return lambda: engines.tar_source([source.path])
    if source.type == SourceType.PLATFORM_CONFIG:
        data = platform_config_export(tenant=backup.tenant)
        return lambda: engines.config_source(data)
    raise ValidationFailed(f"Unknown source type {source.type}")


MEMBER_EXT = {
    SourceType.POSTGRESQL: "dump",
    SourceType.MYSQL: "sql",
    SourceType.PATH: "tar",
    SourceType.SQLITE: "tar",
    SourceType.PLATFORM_CONFIG: "json",
}


# What the decrypted stream is, written into the artifact's header (docs/artifact-format.md).
PAYLOADS = {ServerType.POSTGRESQL: "pg_dump-custom", ServerType.MYSQL: "sql"}


def artifact_payload(backup: Backup) -> str:
    return "bp-bundle" if backup.application_id else PAYLOADS.get(backup.db_type, "unspecified")


def open_source(backup: Backup):
    if backup.server_id:
        return database_source(connection_params(backup.server, backup.database_name))
    sources = list(backup.application.sources.select_related("server").order_by("position", "id"))
    if backup.components:
        sources = [s for s in sources if s.component in backup.components]
    if not sources:
        raise ValidationFailed("The application has no sources to back up")
    for source in sources:
        # Checked again when the work runs: roots may have changed, a folder may be a link now.
        if confinement.source_needs_confinement(type=source.type, server=source.server) and (
            reason := confinement.check_data_path(backup.tenant, source.path)
        ):
            raise ValidationFailed(f"Source '{source.name}' ({source.path}): {reason}")
    members = [(f"{i:02d}-{s.name}.{MEMBER_EXT[s.type]}", _source_factory(backup, s)) for i, s in enumerate(sources)]
    manifest_extra = {
        "application": {
            "id": backup.application_id,
            "name": backup.application.name,
            "namespace": backup.application.namespace,
        },
        "sources": [
            {
                "member": m[0],
                "name": s.name,
                "type": s.type,
                "database": s.database_name,
                "path": s.path,
                "component": s.component,
            }
            for m, s in zip(members, sources, strict=True)
        ],
    }
    return engines.bundle_source(members, manifest_extra)


def estimate_total(backup: Backup) -> int | None:
    """Size of the database(s) to back up, for percent and ETA (None when unknown). An
    application's next backup is about as large as its last one of the same components."""
    if not backup.server_id:
        last = (
            Backup.objects.filter(
                application_id=backup.application_id, components=backup.components, status=BackupStatus.COMPLETED
            )
            .exclude(pk=backup.pk)
            .order_by("-created_at", "-id")
            .values_list("size_bytes", flat=True)
            .first()
        )
        return last or None
    try:
        creds = backup.server.credentials or {}
        for db in list_databases(
            type=backup.server.type,
            host=backup.server.host,
            port=backup.server.port,
            username=creds.get("username") or "",
            password=creds.get("password") or "",
            timeout=5.0,
        ):
            if db["name"] == backup.database_name:
                return int(db.get("size_bytes") or db["size_mb"] * 1024 * 1024)
    except Exception:  # an estimate only: the backup itself reports real errors
        logger.info("could not estimate the size of %s", backup.database_name, exc_info=True)
    return None


def estimate_stored(backup: Backup, raw: int | None) -> int:
    """The artifact size to expect from ``raw`` source bytes: the last completed backup of the
    same database tells its compression ratio (0 when nothing is known)."""
    if not raw:
        return 0
    last = (
        Backup.objects.filter(
            tenant_id=backup.tenant_id,
            server_id=backup.server_id,
            database_name=backup.database_name,
            status=BackupStatus.COMPLETED,
            size_bytes__gt=0,
        )
        .exclude(pk=backup.pk)
        .order_by("-completed_at")
        .first()
    )
    if last is None:
        return raw
    return int(raw * last.stored_bytes / last.size_bytes)


def artifact_manifest(result: PipelineResult, *, created_at, source: dict, bundle: dict | None = None) -> dict:
    """What a backup records of its artifact (``Backup.manifest``): the pipeline's figures, the
    source's facts and an application artifact's own manifest."""
    manifest = {
        "version": "v1",
        "format": "BPAF v2",
        "payload": result.payload,
        "created_at": created_at.isoformat(),
        "source": source,
        "compression": result.compression,
        "encryption": "AES-256-GCM",
        "key_id": result.key_id,
        "raw_bytes": result.raw_bytes,
        "compressed_bytes": result.compressed_bytes,
        "stored_bytes": result.stored_bytes,
        "sha256": result.sha256,
        "chunks": result.chunks,
        "duration_seconds": round(result.duration, 3),
    }
    if bundle:
        manifest["bundle"] = bundle
    return manifest
