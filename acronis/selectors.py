"""Acronis reads: the tenant's config, and upstream data through the tenant's cache.

Each reader returns ``(data, CacheInfo)``. Upstream failures propagate as
``acronis.errors.AcronisError`` (the facade renders their ``ACRONIS_*`` code and status).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache

from acronis import cache as acronis_cache
from acronis import mapping, services
from acronis.cache import CacheInfo
from acronis.client import AcronisClient
from acronis.errors import AcronisConfigInvalid, AcronisError, AcronisInvalidAgentId
from acronis.models import AcronisConfig, AcronisPollState
from backupplatform import netpolicy
from backupplatform.isotime import utc_now_iso
from tenants.models import Tenant

DEFAULT_DAYS = 30


def config_for(*, tenant: Tenant) -> AcronisConfig | None:
    return AcronisConfig.objects.filter(tenant=tenant).first()


def config_status(*, tenant: Tenant) -> dict[str, Any] | None:
    """GET /config data, cached until the config changes; ``None`` when unconfigured."""
    cached = acronis_cache.config_get(tenant.pk)
    if isinstance(cached, dict):
        return cached
    config = config_for(tenant=tenant)
    if config is None:
        return None
    data = services.config_public(config)
    acronis_cache.config_set(tenant.pk, data)
    return data


def require_config(*, tenant: Tenant) -> AcronisConfig:
    config = config_for(tenant=tenant)
    if config is None:
        raise services.ConfigMissing(details={"technical_error": "no Acronis configuration for this tenant"})
    return config


def make_client(config: AcronisConfig) -> AcronisClient:
    """A client for the tenant's credentials; its tokens, circuit breaker and rate-limit
    backoff live under the tenant's cache prefix.

    A stored configuration the client refuses (saved before a validation rule existed)
    is ``ACRONIS_CONFIG_INVALID``, not a crash.
    """
    options = getattr(settings, "ACRONIS_CLIENT_OPTIONS", {})
    # The network policy again, right before connecting (a name may resolve elsewhere now).
    if reason := netpolicy.url_refusal(config.base_url):
        raise AcronisConfigInvalid(technical=f"base_url not allowed as a target: {reason}")
    try:
        return AcronisClient(
            config.base_url,
            config.client_id,
            config.client_secret,
            cache=cache,
            cache_key_prefix=acronis_cache.tenant_prefix(config.tenant_id),
            tenant_scope=config.tenant_scope or None,
            **options,
        )
    except ValueError as exc:
        raise AcronisConfigInvalid(technical=str(exc)) from None


@contextlib.contextmanager
def client_for(*, tenant: Tenant) -> Iterator[AcronisClient]:
    client = make_client(require_config(tenant=tenant))
    try:
        yield client
    finally:
        client.close()


# --- cached upstream reads ------------------------------------------------------------------


def _raw_agents(tenant: Tenant) -> list[dict]:
    with client_for(tenant=tenant) as client:
        agents = [mapping.map_agent(a) for a in client.list_agents()]
    since = services.agent_states_update(tenant=tenant, agents=agents)
    for agent in agents:
        agent["online_since"] = since.get(str(agent["id_agent"] or "").lower())
    return agents


def agents_list(*, tenant: Tenant, refresh: bool = False) -> tuple[list[dict], CacheInfo]:
    """Agents in the seed's shape, with ``uptime`` computed now from the online streak."""
    require_config(tenant=tenant)
    cached, info = acronis_cache.cached_fetch(
        tenant.pk, "agents", acronis_cache.AGENTS_TTL, lambda: _raw_agents(tenant), refresh=refresh
    )
    rows = []
    for agent in cached:
        agent = dict(agent)
        since = agent.pop("online_since", None)
        rows.append(mapping.with_uptime(agent, since))
    return rows, info


def workloads_list(*, tenant: Tenant, refresh: bool = False) -> tuple[list[dict], CacheInfo]:
    """Workloads (with ``agent_id`` kept for the associations; the view drops it)."""
    require_config(tenant=tenant)

    def load() -> list[dict]:
        with client_for(tenant=tenant) as client:
            return [mapping.map_workload(w) for w in client.list_workloads()]

    return acronis_cache.cached_fetch(tenant.pk, "workloads", acronis_cache.WORKLOADS_TTL, load, refresh=refresh)


def associations_list(*, tenant: Tenant) -> tuple[list[dict], CacheInfo]:
    require_config(tenant=tenant)

    def load() -> list[dict]:
        workloads, _ = workloads_list(tenant=tenant)
        agents, _ = agents_list(tenant=tenant)
        policy_statuses: list[dict] = []
        if any(not w.get("agent_id") for w in workloads):
            with client_for(tenant=tenant) as client:
                policy_statuses = client.list_policy_statuses()
        return mapping.build_associations(workloads, policy_statuses, agents)

    return acronis_cache.cached_fetch(tenant.pk, "associations", acronis_cache.ASSOCIATIONS_TTL, load)


def backup_activities(
    *, tenant: Tenant, days: int = DEFAULT_DAYS, refresh: bool = False
) -> tuple[list[dict], CacheInfo]:
    """Backup activities (``policyType=backup``) started in the last ``days`` days, compacted.

    ``startedAt`` rather than ``completedAt`` so that running backups are included too.
    """
    require_config(tenant=tenant)

    def load() -> list[dict]:
        since = datetime.now(UTC) - timedelta(days=days)
        seen: set[str] = set()
        out = []
        with client_for(tenant=tenant) as client:
            for raw in client.iter_activities(started_after=since):
                activity = mapping.compact_activity(raw)
                if activity["id"] and activity["id"] not in seen:
                    seen.add(activity["id"])
                    out.append(activity)
        return out

    return acronis_cache.cached_fetch(
        tenant.pk, f"activities:d{days}", acronis_cache.BACKUPS_TTL, load, refresh=refresh
    )


def backup_statistics(*, tenant: Tenant, days: int, limit: int) -> tuple[dict, CacheInfo]:
    activities, info = backup_activities(tenant=tenant, days=days)
    workloads, _ = workloads_list(tenant=tenant)
    return mapping.backup_statistics(activities, workloads, limit=limit), info


def agent_backups(
    *, tenant: Tenant, agent_id: str, limit: int, include_activities: bool, days: int = DEFAULT_DAYS
) -> tuple[dict, CacheInfo]:
    if not mapping.is_guid(agent_id):
        raise AcronisInvalidAgentId(technical=f"not a GUID: {agent_id[:64]!r}")
    require_config(tenant=tenant)
    agents, _ = agents_list(tenant=tenant)
    agent = next((a for a in agents if mapping.lower(a["id_agent"]) == agent_id.lower()), None)
    if agent is None:
        # Not in the cached list: ask Acronis (a new agent, or a 404 -> ACRONIS_AGENT_NOT_FOUND).
        with client_for(tenant=tenant) as client:
            agent = mapping.map_agent(client.get_agent(agent_id))
    associations, _ = associations_list(tenant=tenant)
    workload_ids = [a["workload_id"] for a in associations if mapping.lower(a["agent_id"]) == agent_id.lower()]
    activities, info = backup_activities(tenant=tenant, days=days)
    data = mapping.agent_backups(agent, activities, workload_ids, limit=limit, include_activities=include_activities)
    return data, info


# --- health ----------------------------------------------------------------------------------


def _now_iso() -> str:
    return utc_now_iso()


def health_check(*, tenant: Tenant) -> tuple[bool, dict[str, Any], AcronisError | None]:
    """Live check (never cached): token, then one page of agents and of workloads.

    Returns ``(ok, data, first_error)``; ``data`` is the seed's success or failure ``data``
    plus the tenant's ``circuit_breaker`` and ``rate_limit`` state. While the breaker is
    open (or the tenant backs off) the check fails at once without calling Acronis.
    """
    config = config_for(tenant=tenant)
    if config is None:
        return (
            False,
            {
                "api_status": "not_configured",
                "last_check": _now_iso(),
                "errors": ["Acronis integration is not configured"],
                "configuration": {"configured": False},
            },
            None,
        )
    started = time.monotonic()
    try:
        client = make_client(config)
    except AcronisConfigInvalid as exc:
        probe: dict[str, Any] = {
            "token_valid": False,
            "token_cached": None,
            "endpoints": [],
            "errors": [exc.message],
            "first_error": exc,
            "upstream": {},
        }
    else:
        try:
            probe = _probe(client)
        finally:
            client.close()
    errors = probe["errors"]
    data: dict[str, Any] = {
        "api_status": "connected" if not errors else ("degraded" if probe["token_valid"] else "disconnected"),
        "last_check": _now_iso(),
        "response_time_ms": round((time.monotonic() - started) * 1000),
        "token_valid": probe["token_valid"],
        "token_cached": probe["token_cached"],
        "endpoints_tested": probe["endpoints"],
        "configuration": {"base_url": config.base_url, "configured": True},
        **probe["upstream"],
    }
    if errors:
        data["errors"] = errors
    return not errors, data, probe["first_error"]


def _probe(client: AcronisClient) -> dict[str, Any]:
    """Token, then one page of agents and of workloads, with timings and errors."""
    result: dict[str, Any] = {
        "token_valid": False,
        "token_cached": None,
        "endpoints": [],
        "errors": [],
        "first_error": None,
    }
    try:
        result["token_cached"] = client.check_health()["token_cached"]
        result["token_valid"] = True
    except AcronisError as exc:
        result["errors"].append(exc.message)
        result["first_error"] = exc
    if result["token_valid"]:
        for name, path in (
            ("/agents", "/api/agent_manager/v2/agents"),
            ("/workloads", "/api/workload_management/v5/workloads"),
        ):
            t0 = time.monotonic()
            try:
                client.get(path, {"limit": 1})
                endpoint: dict[str, Any] = {"endpoint": name, "status": "ok"}
            except AcronisError as exc:
                result["errors"].append(f"{name}: {exc.message}")
                result["first_error"] = result["first_error"] or exc
                endpoint = {"endpoint": name, "status": "error", "error_code": exc.code}
            endpoint["response_time_ms"] = round((time.monotonic() - t0) * 1000)
            result["endpoints"].append(endpoint)
    result["upstream"] = client.upstream_status()
    return result


def counts(*, tenant: Tenant) -> dict[str, int]:
    """Agents, workloads and backups (30 days) of a tenant, through the cache."""
    agents, _ = agents_list(tenant=tenant)
    workloads, _ = workloads_list(tenant=tenant)
    activities, _ = backup_activities(tenant=tenant)
    return {"agents": len(agents), "workloads": len(workloads), "backups": sum(1 for a in activities if a["root"])}


def connection_state(*, tenant: Tenant, stale_after: timedelta = timedelta(minutes=10)) -> dict[str, Any] | None:
    """Whether the platform reaches the tenant's Acronis, without calling it (``None`` when
    the tenant has no Acronis configuration): ``disconnected`` while the circuit breaker is
    open, or when the poller has not read Acronis for ``stale_after`` (it does every 60 s)."""

    config = config_for(tenant=tenant)
    if config is None:
        return None
    polled_at = AcronisPollState.objects.filter(tenant=tenant).values_list("polled_at", flat=True).first()
    try:
        with make_client(config) as client:  # no network: the breaker's state is in the cache
            breaker = client.upstream_status()["circuit_breaker"]["state"]
    except AcronisError:
        breaker = "unknown"
    now = datetime.now(UTC)
    stale = (polled_at or config.created_at) < now - stale_after
    connected = breaker == "closed" and not stale
    return {
        "status": "connected" if connected else "disconnected",
        "last_polled_at": polled_at,
        "circuit_breaker": breaker,
    }
