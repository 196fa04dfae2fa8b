"""Acronis domain logic: configuration writes, the agents' online streaks (uptime) and
the poller.

Transport stays in ``acronis/client/``; mapping upstream dicts into the seed's shapes in
``acronis/mapping.py``; reads through the cache in ``acronis/selectors.py``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from acronis import cache as acronis_cache
from acronis import selectors
from acronis.client import normalize_base_url
from acronis.mapping import FAILED_RESULTS, is_guid, lower
from acronis.models import (
    GRANT_CLIENT_CREDENTIALS,
    AcronisAgentState,
    AcronisConfig,
    AcronisPollState,
)
from audit.services import emit, publish
from backupplatform import netpolicy
from backupplatform.errors import Conflict, DomainError, ValidationFailed
from tenants.models import Tenant

logger = logging.getLogger(__name__)


class ConfigMissing(DomainError):
    status = 404
    code = "ACRONIS_CONFIG_MISSING"
    default_message = "Acronis integration is not configured"
    help = "Save the Acronis API client (base_url, client_id, client_secret) with POST /api/acronis/config."


# --- configuration -------------------------------------------------------------------------


def config_public(config: AcronisConfig) -> dict[str, Any]:
    """What GET /config shows: never the secret."""
    return {
        "base_url": config.base_url,
        "client_id": config.client_id,
        "grant_type": config.grant_type,
        "tenant_scope": config.tenant_scope or None,
        "configured": True,
        "last_updated": config.last_updated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def config_check(
    *,
    base_url: str,
    client_id: str,
    client_secret: str | None,
    grant_type: str,
    tenant_scope: str | None,
) -> dict[str, Any]:
    """The configuration's values, trimmed; unusable ones are ``ACRONIS_INVALID_CONFIG``.

    The one check every writer (API, admin) goes through, so that no stored configuration
    can later make the client fail to build a request (a control character in the base
    URL, a customer scope that is not a UUID).
    """
    errors: dict[str, list[str]] = {}
    try:
        normalize_base_url(base_url)
    except ValueError as exc:
        errors["base_url"] = [f"{exc}; e.g. https://eu2-cloud.acronis.com/api/."]
    else:
        if reason := netpolicy.url_refusal(base_url.strip()):
            errors["base_url"] = [f"Not allowed as a target: {reason}."]
    if not client_id.strip():
        errors["client_id"] = ["Must not be empty."]
    if client_secret is not None and not client_secret.strip():
        errors["client_secret"] = ["Must not be empty."]
    if grant_type != GRANT_CLIENT_CREDENTIALS:
        errors["grant_type"] = ["Only client_credentials is supported."]
    scope = (tenant_scope or "").strip()
    if scope and not is_guid(scope):
        errors["tenant_scope"] = ["Must be a customer tenant UUID, e.g. ede9f834-70b3-476c-83d9-736f9f8c7dae."]
    if errors:
        raise ValidationFailed("Invalid configuration data", code="ACRONIS_INVALID_CONFIG", details=errors)
    return {
        "base_url": base_url.strip(),
        "client_id": client_id.strip(),
        "client_secret": client_secret,
        "grant_type": grant_type,
        "tenant_scope": str(uuid.UUID(scope)) if scope else ("" if tenant_scope is not None else None),
    }


@transaction.atomic
def config_save(
    *,
    tenant: Tenant,
    base_url: str,
    client_id: str,
    client_secret: str | None = None,
    grant_type: str = GRANT_CLIENT_CREDENTIALS,
    tenant_scope: str | None = None,
    create: bool,
) -> AcronisConfig:
    """Create (POST) or update (PUT) the tenant's config; invalidates its cache.

    POST when a config exists is a 409 ``ACRONIS_CONFIG_EXISTS`` (replacing credentials by
    accident would cut every dashboard off); PUT when none exists creates it (an upsert),
    but then needs ``client_secret``. PUT without ``client_secret`` keeps the stored one,
    and ``tenant_scope=None`` keeps the stored scope (``""`` clears it).
    """
    values = config_check(
        base_url=base_url,
        client_id=client_id,
        client_secret=client_secret,
        grant_type=grant_type,
        tenant_scope=tenant_scope,
    )
    config = AcronisConfig.objects.select_for_update().filter(tenant=tenant).first()
    if create and config is not None:
        raise Conflict(
            "An Acronis configuration already exists; update it with PUT",
            code="ACRONIS_CONFIG_EXISTS",
            details={"technical_error": "POST /api/acronis/config with an existing configuration"},
        )
    if config is None:
        if not client_secret:
            raise ValidationFailed(
                code="ACRONIS_VALIDATION_ERROR",
                details={"client_secret": ["This field is required."]},
            )
        config = AcronisConfig(tenant=tenant)
        action = "acronis_config_create"
    else:
        action = "acronis_config_update"
    changed = _apply_config(config, values)
    config.save()
    emit(
        action=action,
        tenant=tenant,
        resource_type="acronis_config",
        resource_id=config.pk,
        details={
            "base_url": config.base_url,
            "client_id": config.client_id,
            "tenant_scope": config.tenant_scope or None,
            "changed_fields": changed,
        },
    )
    transaction.on_commit(lambda: acronis_cache.invalidate_tenant(tenant.pk))
    acronis_cache.invalidate_tenant(tenant.pk)
    return config


def _apply_config(config: AcronisConfig, values: dict[str, Any]) -> list[str]:
    """Set the given values on ``config``; the names of the fields that changed."""
    changed = []
    for field in ("base_url", "client_id", "grant_type", "tenant_scope"):
        value = values[field]
        if value is not None and getattr(config, field, None) != value:
            changed.append(field)
            setattr(config, field, value)
    secret = values["client_secret"]
    if secret:
        if config.pk is None or config.client_secret != secret:
            changed.append("client_secret")
        config.client_secret = secret
    return changed


@transaction.atomic
def config_delete(*, tenant: Tenant) -> None:
    config = AcronisConfig.objects.filter(tenant=tenant).first()
    if config is None:
        raise DomainError(
            "No Acronis configuration to delete",
            code="ACRONIS_CONFIG_NOT_FOUND",
            status=404,
            details={"technical_error": "the tenant has no Acronis configuration"},
        )
    pk = config.pk
    config.delete()
    AcronisAgentState.objects.filter(tenant=tenant).delete()
    AcronisPollState.objects.filter(tenant=tenant).delete()
    emit(
        action="acronis_config_delete",
        tenant=tenant,
        resource_type="acronis_config",
        resource_id=pk,
        details={"base_url": config.base_url, "client_id": config.client_id},
    )
    transaction.on_commit(lambda: acronis_cache.invalidate_tenant(tenant.pk))
    acronis_cache.invalidate_tenant(tenant.pk)


# --- agents' online streaks ------------------------------------------------------------------


@transaction.atomic
def agent_states_update(
    *, tenant: Tenant, agents: Iterable[dict], now: datetime | None = None
) -> dict[str, str | None]:
    """Record what we saw of the (mapped) agents; returns ``{agent_id: online_since ISO}``.

    An agent's ``online_since`` is set when we first see it online and cleared when we see
    it offline, so it marks the start of the current online streak.
    """
    now = now or timezone.now()
    existing = {s.agent_id: s for s in AcronisAgentState.objects.select_for_update().filter(tenant=tenant)}
    result: dict[str, str | None] = {}
    # Written in at most three statements whatever the number of agents (no query per agent).
    seen_only: list[int] = []
    created: list[AcronisAgentState] = []
    changed: list[AcronisAgentState] = []
    for agent in agents:
        agent_id = lower(agent.get("id_agent"))
        if not agent_id or agent_id in result:
            continue
        state = existing.get(agent_id)
        online = bool(agent.get("online"))
        if state is None:
            state = AcronisAgentState(tenant=tenant, agent_id=agent_id)
            created.append(state)
        elif state.online == online and state.hostname == agent.get("hostname"):
            state.last_seen_at = now
            seen_only.append(state.pk)
            result[agent_id] = state.online_since.isoformat() if state.online_since else None
            continue
        else:
            changed.append(state)
        if online and (not state.online or state.online_since is None):
            state.online_since = now
        if not online:
            state.online_since = None
        state.online = online
        state.hostname = agent.get("hostname") or ""
        state.last_seen_at = now
        result[agent_id] = state.online_since.isoformat() if state.online_since else None
    if seen_only:
        AcronisAgentState.objects.filter(pk__in=seen_only).update(last_seen_at=now)
    if created:
        AcronisAgentState.objects.bulk_create(created)
    if changed:
        AcronisAgentState.objects.bulk_update(changed, ["online", "online_since", "hostname", "last_seen_at"])
    return result


# --- the poller ----------------------------------------------------------------------------


def backup_status(activity: dict) -> str:
    """The status pushed in ``backup_status_update``: running, completed, failed, warning..."""
    if activity.get("state") != "completed":
        return "running" if activity.get("state") in ("started", "assigned") else str(activity.get("state"))
    result = activity.get("result")
    if result in FAILED_RESULTS:
        return "failed"
    return "completed" if result in (None, "ok") else str(result)


@transaction.atomic
def activity_changes_record(*, tenant: Tenant, activities: list[dict]) -> list[dict]:
    """Compare root backup activities with the last seen states; returns the events to push.

    The first poll of a tenant only records (no flood of events for history). Later, a new
    activity or a changed state/result is an event. Only the activities of the current window
    are remembered (older ones drop out of the stored map).
    """
    state, created = AcronisPollState.objects.select_for_update().get_or_create(tenant=tenant)
    previous: dict[str, str] = dict(state.activity_states or {})
    first_poll = created or state.polled_at is None
    now = timezone.now()
    current: dict[str, str] = {}
    events = []
    for activity in activities:
        if not activity["root"]:
            continue
        status = backup_status(activity)
        current[activity["id"]] = status
        if not first_poll and previous.get(activity["id"]) != status:
            events.append(
                {
                    "type": "backup_status_update",
                    "data": {
                        "agent_id": activity.get("agent_id"),
                        "backup_id": activity["id"],
                        "status": status,
                        "timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    },
                }
            )
    state.activity_states = current
    state.polled_at = now
    state.save(update_fields=["activity_states", "polled_at"])
    for event in events:
        publish(tenant_id=tenant.pk, event=event, stream="acronis")
        if event["data"]["status"] == "failed":  # the acronis.backup_error notification event
            emit(
                action="acronis_backup_error",
                tenant=tenant,
                resource_type="acronis_agent",
                resource_id=event["data"]["agent_id"] or "",
                details={**event["data"], "error": "Backup failed"},
            )
    return events


def poll_outcome_record(*, tenant: Tenant, error: Exception | None) -> None:
    """Tell once when the poller loses Acronis (``acronis_disconnected``) and once when it is
    back (``acronis_reconnected``), not on every poll. Rate limiting is not a disconnection."""
    from django.core.cache import cache

    key = f"acronis:t{tenant.pk}:poll-failing"
    if error is None:
        if cache.delete(key):
            emit(
                action="acronis_reconnected", tenant=tenant, resource_type="acronis_config", resource_id="", details={}
            )
        return
    if getattr(error, "code", "") == "ACRONIS_RATE_LIMITED":
        return
    if cache.add(key, 1, timeout=None):
        emit(
            action="acronis_disconnected",
            tenant=tenant,
            resource_type="acronis_config",
            resource_id="",
            details={"error_code": getattr(error, "code", ""), "error": str(getattr(error, "message", error))},
        )


def poll_tenant(*, tenant: Tenant) -> dict[str, Any]:
    """Refresh the tenant's cached agents, workloads and backups; push state changes."""

    agents, _ = selectors.agents_list(tenant=tenant, refresh=True)
    workloads, _ = selectors.workloads_list(tenant=tenant, refresh=True)
    activities, _ = selectors.backup_activities(tenant=tenant, days=selectors.DEFAULT_DAYS, refresh=True)
    events = activity_changes_record(tenant=tenant, activities=activities)
    return {"agents": len(agents), "workloads": len(workloads), "activities": len(activities), "events": len(events)}
