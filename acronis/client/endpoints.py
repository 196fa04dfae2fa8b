"""The Acronis endpoints the integration reads (``spec/acronis-cloud-api.md``)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from acronis.client.core import ClientCore
from acronis.client.paging import iter_pages
from acronis.client.util import format_rfc3339, ms, same_guid
from acronis.errors import (
    AcronisAgentNotFound,
    AcronisDataError,
    AcronisInvalidAgentId,
    AcronisNotFound,
)

AGENTS_PATH = "/api/agent_manager/v2/agents"
WORKLOADS_PATH = "/api/workload_management/v5/workloads"
POLICY_STATUSES_PATH = "/api/policy_management/v4/policy_statuses"
ACTIVITIES_PATH = "/api/task_manager/v2/activities"


class AcronisClient(ClientCore):
    """Synchronous client for one Acronis API client (see :class:`ClientCore` for options)."""

    # -- generic ------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the base URL) and return the decoded JSON body."""
        return self._request_json("GET", path, params=params)

    def iter_pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """Each page body of a cursor-paged list (section 9, ``paging.py``)."""
        return iter_pages(self.get, path, params)

    def iter_items(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """The items of every page of ``path``."""
        for page in self.iter_pages(path, params):
            yield from page.get("items") or []

    # -- account (section 2) ------------------------------------------------------------

    def get_token_info(self) -> dict:
        """``GET /api/2/clients/{client_id}``: the cheapest authenticated call.

        Returns the raw body: ``{type, tenant_id, data: {client_name}, created_by, ...}``.
        """
        body = self.get(f"/api/2/clients/{quote(self.client_id, safe='')}")
        if not isinstance(body, dict):
            raise AcronisDataError(technical="GET /api/2/clients/{id}: body is not a JSON object")
        return body

    def check_health(self) -> dict:
        """Prove that credentials and token work, with timings.

        Returns ``{"api_status": "connected", "token_valid": True, "token_cached": bool,
        "token_time_ms", "response_time_ms", "total_time_ms", "tenant_id", "client"}``
        where ``token_cached`` tells whether a cached token was reused and ``client`` is
        the raw :meth:`get_token_info` body. Raises ``AcronisError`` on failure.
        """
        token = self._timed_token()
        started = time.monotonic()
        info = self.get_token_info()
        response_ms = ms(time.monotonic() - started)
        return {
            "api_status": "connected",
            "token_valid": True,
            **token,
            "response_time_ms": response_ms,
            "total_time_ms": round(token["token_time_ms"] + response_ms, 1),
            "tenant_id": info.get("tenant_id"),
            "client": info,
        }

    # -- agents (section 3) -------------------------------------------------------------

    def list_agents(self, *, limit: int = 100) -> list[dict]:
        """All agents visible to the token, every page."""
        return list(self.iter_items(AGENTS_PATH, {"limit": limit}))

    def get_agent(self, agent_id: str) -> dict:
        """One agent by GUID.

        Raises ``AcronisInvalidAgentId`` (before any call) for a non-GUID and
        ``AcronisAgentNotFound`` on an upstream 404.
        """
        try:
            uuid.UUID(str(agent_id))
        except ValueError:
            raise AcronisInvalidAgentId(technical=f"not a GUID: {str(agent_id)[:64]!r}") from None
        path = f"{AGENTS_PATH}/{quote(str(agent_id), safe='')}"
        try:
            body = self.get(path)
        except AcronisNotFound as exc:
            raise AcronisAgentNotFound(
                technical=exc.technical,
                upstream_status=exc.upstream_status,
                upstream_code=exc.upstream_code,
                upstream_domain=exc.upstream_domain,
            ) from None
        if isinstance(body, dict) and "id" not in body and isinstance(body.get("items"), list):
            # Tolerate a list-shaped answer: pick the agent out of it.
            for item in body["items"]:
                if isinstance(item, dict) and same_guid(item.get("id"), agent_id):
                    return item
            raise AcronisAgentNotFound(technical=f"GET {path}: agent not in the returned items")
        if not isinstance(body, dict):
            raise AcronisDataError(technical=f"GET {path}: body is not a JSON object")
        return body

    # -- workloads (section 4) ----------------------------------------------------------

    def list_workloads(self, *, limit: int = 100) -> list[dict]:
        """All workloads from Workload Management v5 (4a); items carry ``agent_id``."""
        return list(self.iter_items(WORKLOADS_PATH, {"limit": limit}))

    def list_policy_statuses(self, *, tenant_id: str | None = None, limit: int = 100) -> list[dict]:
        """Policy statuses (4d); ``context`` carries ``agent_id`` and ``agent_name``.

        Section 4d documents the call with ``tenant_id=<uuid>``: by default the customer
        of a scoped client, else the API client's own tenant (section 2).
        """
        tenant_id = tenant_id or self.tenant_scope or self.get_token_info().get("tenant_id")
        if not isinstance(tenant_id, str) or not tenant_id:
            raise AcronisDataError(technical="GET /api/2/clients/{id}: no tenant_id in the answer")
        return list(self.iter_items(POLICY_STATUSES_PATH, {"tenant_id": tenant_id, "limit": limit}))

    # -- backup history (section 6) -----------------------------------------------------

    def iter_activities(
        self,
        *,
        started_after: datetime | None = None,
        policy_type: str | None = "backup",
        limit: int = 100,
    ) -> Iterator[dict]:
        """Task Manager v2 activities, page by page, filtered server-side.

        Items are raw; use ``idString`` (not the 64-bit ``id``).
        """
        params: dict[str, Any] = {"limit": limit}
        if policy_type:
            params["policyType"] = policy_type
        if started_after is not None:
            params["startedAt"] = f"gt({format_rfc3339(started_after)})"
        return self.iter_items(ACTIVITIES_PATH, params)
