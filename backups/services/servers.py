"""Servers: create, update, delete, real connection tests and health checks.

db-backup-platform.md, "Servers". Credentials (``username``, ``password``, ``ssh_key``) are
encrypted at rest by ``EncryptedJSONField`` and never leave this module except into
``backups.connectivity`` (which scrubs them from every message it returns). Audit details
name which credential keys changed, never their values.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from audit.services import emit, publish
from backupplatform import netpolicy
from backupplatform.errors import Conflict, UpstreamError, ValidationFailed
from backups import connectivity
from tenants import capabilities
from tenants.models import Tenant

from ..models import HealthStatus, Server, ServerType

logger = logging.getLogger(__name__)

# ``host_key`` pins an SSH server's public key ("ssh-ed25519 AAAA..."): not a secret, but it
# belongs with the login it protects.
CREDENTIAL_KEYS = ("username", "password", "ssh_key", "host_key")
# Server types whose databases can be listed (connectivity.list_databases).
DATABASE_TYPES = (ServerType.POSTGRESQL, ServerType.MYSQL)
EDITABLE_FIELDS = ("name", "description", "type", "environment", "host", "port", "tags")


def _timeout() -> float:
    """Short timeout of interactive checks ("Test Server Connection"); settable for tests."""
    return float(getattr(settings, "SERVER_CONNECT_TIMEOUT", 5.0))


def _check_name(*, tenant: Tenant, name: str, exclude_pk: int | None = None) -> None:
    qs = Server.objects.filter(tenant=tenant, name=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed(details={"name": ["A server with this name already exists."]})


def _merge_credentials(current: dict, changes: dict | None) -> tuple[dict, list[str]]:
    """Apply ``changes`` to ``current``: a string sets a key, ``null`` or ``""`` removes it."""
    merged = dict(current or {})
    changed: list[str] = []
    for key, value in (changes or {}).items():
        if key not in CREDENTIAL_KEYS:
            raise ValidationFailed(details={f"credentials.{key}": ["Unknown credential field."]})
        if value in (None, ""):
            if key in merged:
                merged.pop(key)
                changed.append(key)
        elif not isinstance(value, str):
            raise ValidationFailed(details={f"credentials.{key}": ["Not a valid string."]})
        elif merged.get(key) != value:
            merged[key] = value
            changed.append(key)
    return merged, changed


@transaction.atomic
def server_create(
    *,
    tenant: Tenant,
    name: str,
    type: str,
    host: str,
    port: int,
    description: str = "",
    environment: str = "",
    tags: dict | None = None,
    credentials: dict | None = None,
) -> Server:
    """Register a server; credentials are encrypted at rest, health starts ``unknown``."""
    capabilities.require_feature(tenant)
    _check_name(tenant=tenant, name=name)
    netpolicy.check_host(host, port)
    creds, changed = _merge_credentials({}, credentials)
    server = Server.objects.create(
        tenant=tenant,
        name=name,
        type=type,
        host=host,
        port=port,
        description=description,
        environment=environment,
        tags=tags or {},
        credentials=creds,
    )
    emit(
        action="server_create",
        tenant=tenant,
        resource_type="server",
        resource_id=server.pk,
        details={"name": name, "type": type, "host": host, "port": port, "credential_fields": changed},
    )
    return server


@transaction.atomic
def server_update(*, server: Server, **changes: Any) -> Server:
    """Partial update: only given fields change; ``credentials`` keys merge (``null`` removes)."""
    capabilities.require_feature(server.tenant)
    changed: list[str] = []
    if "name" in changes and changes["name"] != server.name:
        _check_name(tenant=server.tenant, name=changes["name"], exclude_pk=server.pk)
    for field in EDITABLE_FIELDS:
        if field in changes and getattr(server, field) != changes[field]:
            setattr(server, field, changes[field])
            changed.append(field)
    if {"host", "port"} & set(changed):
        netpolicy.check_host(server.host, server.port)
    credential_fields: list[str] = []
    if "credentials" in changes:
        server.credentials, credential_fields = _merge_credentials(server.credentials, changes["credentials"])
        if credential_fields:
            changed.append("credentials")
    if {"host", "port", "type", "credentials"} & set(changed):
        # What we knew about the old endpoint says nothing about the new one.
        server.health_status = HealthStatus.UNKNOWN
        server.health_message = ""
    server.save()
    emit(
        action="server_update",
        tenant=server.tenant,
        resource_type="server",
        resource_id=server.pk,
        details={"changed_fields": changed, "credential_fields": credential_fields},
    )
    return server


@transaction.atomic
def server_delete(*, server: Server) -> None:
    """Delete a server that no source or backup job uses (its backups are kept)."""
    pk, tenant, name = server.pk, server.tenant, server.name
    try:
        server.delete()
    except ProtectedError as exc:
        users = sorted({f"{obj._meta.model_name}:{obj.pk}" for obj in exc.protected_objects})
        raise Conflict(
            f"Server '{name}' is used by {len(users)} source(s) or backup job(s)",
            code="SERVER_IN_USE",
            details={"used_by": users},
        ) from None
    emit(action="server_delete", tenant=tenant, resource_type="server", resource_id=pk, details={"name": name})


def _probe(server: Server, timeout: float | None = None) -> connectivity.ConnectionResult:
    creds = server.credentials or {}
    return connectivity.test_connection(
        type=server.type,
        host=server.host,
        port=server.port,
        username=creds.get("username"),
        password=creds.get("password"),
        ssh_key=creds.get("ssh_key"),
        host_key=creds.get("host_key"),
        timeout=_timeout() if timeout is None else timeout,
    )


def _record_health(server: Server, result: connectivity.ConnectionResult) -> bool:
    """Store the outcome on the server; publish ``server_health`` if the status changed."""
    now = timezone.now()
    new_status = HealthStatus.HEALTHY if result.success else HealthStatus.UNHEALTHY
    changed = server.health_status != new_status
    server.health_status = new_status
    server.health_message = result.message[:500]
    fields = ["health_status", "health_message", "updated_at"]
    if result.success:
        server.last_heartbeat = now
        fields.append("last_heartbeat")
    server.save(update_fields=fields)
    if changed:
        # db-backup-platform.md, "WebSocket Events": Server Health Update.
        publish(
            tenant_id=server.tenant_id,
            event={
                "type": "server_health",
                "server_id": server.pk,
                "health_status": new_status,
                "message": server.health_message,
                "timestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
    return changed


@transaction.atomic
def server_test_connection(*, server: Server) -> connectivity.ConnectionResult:
    """Really connect (short timeout), record the health, audit it. Never raises for failures."""
    result = _probe(server)
    _record_health(server, result)
    emit(
        action="server_test_connection",
        tenant=server.tenant,
        resource_type="server",
        resource_id=server.pk,
        details={
            "success": result.success,
            "message": result.message,
            "latency_ms": result.latency_ms,
            "error_kind": result.kind,
        },
    )
    return result


def server_check_health(*, server: Server, result: connectivity.ConnectionResult | None = None) -> bool:
    """One periodic check (beat): returns True when the health status changed."""
    result = _probe(server) if result is None else result
    with transaction.atomic():
        changed = _record_health(server, result)
        if changed:
            emit(
                action="server_health_change",
                tenant=server.tenant,
                resource_type="server",
                resource_id=server.pk,
                details={"health_status": server.health_status, "message": result.message, "error_kind": result.kind},
            )
    return changed


def server_check_all_health() -> dict[str, int]:
    """Check every server of every tenant; a failure of one never stops the others.

    The probes (network only, no database) run on a bounded thread pool
    (``HEALTH_CHECK_CONCURRENCY``), so a sweep over many unreachable servers takes about
    one connect timeout per pool's worth of servers, not one per server. Results are
    recorded here, in the calling thread, as each probe finishes.
    """
    from concurrent.futures import ThreadPoolExecutor, as_completed

    checked = changed = 0
    servers = list(Server.objects.select_related("tenant").filter(tenant__is_active=True).order_by("id"))
    workers = max(1, min(int(getattr(settings, "HEALTH_CHECK_CONCURRENCY", 100)), len(servers) or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="health") as pool:
        futures = {}
        for server in servers:
            try:
                futures[pool.submit(_probe, server)] = server
            except Exception:  # one broken row (say, an undecryptable secret) must not stop the sweep
                logger.exception("Health check of server %s failed unexpectedly", server.pk)
        for future in as_completed(futures):
            server = futures[future]
            checked += 1
            try:
                changed += server_check_health(server=server, result=future.result())
            except Exception:
                logger.exception("Health check of server %s failed unexpectedly", server.pk)
    return {"checked": checked, "changed": changed}


def server_list_databases(*, server: Server) -> list[dict[str, Any]]:
    """db-backup-platform.md, "List Databases on Server": real databases with sizes."""
    if server.type not in DATABASE_TYPES:
        raise ValidationFailed(
            f"Cannot list databases of a '{server.type}' server",
            code="UNSUPPORTED_SERVER_TYPE",
            details={"type": [f"Databases can be listed on {', '.join(DATABASE_TYPES)} servers only."]},
        )
    creds = server.credentials or {}
    try:
        return connectivity.list_databases(
            type=server.type,
            host=server.host,
            port=server.port,
            username=creds.get("username") or "",
            password=creds.get("password"),
            timeout=_timeout(),
        )
    except connectivity.ConnectionFailed as exc:
        raise UpstreamError(exc.message, code="CONNECTION_FAILED", details={"error_kind": exc.kind}) from None
