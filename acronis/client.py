"""HTTP transport for the Acronis Cyber Protect Cloud API (``spec/acronis-cloud-api.md``).

This module speaks HTTP only: no Django, no ORM. ``acronis/services.py`` maps the raw
upstream dicts returned here into our models.

What it does for every call:

* OAuth2 client credentials (section 1): one token per (data center, client, secret,
  tenant scope), kept in a shared cache (the Django cache in production) so every worker
  process reuses it, refreshed ahead of ``expires_on``. Fetching is single-flight across
  threads and processes: ``cache.add`` takes a short lock, the others poll the cache.
* One transparent retry on 401 with a fresh token (section 1); a second 401 is
  ``ACRONIS_AUTH_FAILED``.
* Retries (section 10) with tenacity: 429 and 503 honour ``Retry-After`` (seconds or
  HTTP date), other 5xx, timeouts and connection errors back off exponentially. Every
  attempt and every wait stays within ``deadline`` seconds per call; when the upstream
  asks us to wait longer than what is left, ``AcronisRateLimited`` is raised at once with
  ``retry_after`` so the caller can schedule a retry.
* Both error body shapes (section 10) are parsed into the raised ``AcronisError``.
* Cursor pagination (section 9): later pages send only ``after`` and ``limit``.

Secrets: the client secret and tokens are never logged and never put in exception
text. Upstream calls are logged at DEBUG with method, path (no query) and status.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import tenacity

from acronis.errors import (
    AcronisAgentNotFound,
    AcronisApiError,
    AcronisAuthFailed,
    AcronisClientError,
    AcronisConnectionError,
    AcronisCredentialsInvalid,
    AcronisDataError,
    AcronisError,
    AcronisInvalidAgentId,
    AcronisNetworkError,
    AcronisNotFound,
    AcronisPermissionError,
    AcronisRateLimited,
    AcronisServerError,
    AcronisTimeoutError,
    AcronisTokenInvalid,
)

logger = logging.getLogger(__name__)

__all__ = ["AcronisClient", "CacheLike", "parse_error_body", "parse_retry_after"]

TOKEN_PATH = "/api/2/idp/token"
# Section 1: tokens live 2 hours; fall back to that when ``expires_on`` is missing.
DEFAULT_TOKEN_LIFETIME = 7200.0
# Section 1: Acronis's samples refresh 15 minutes before expiry.
DEFAULT_REFRESH_MARGIN = 900.0
# How long a waiter sleeps between looks at the cache while another worker fetches.
TOKEN_POLL_INTERVAL = 0.02
# How long a failed credential check is remembered, so that the workers waiting on the
# lock holder fail with it instead of each asking the token endpoint again.
CREDENTIALS_FAILURE_TTL = 5
# Below this, a further attempt cannot usefully complete before the deadline.
MIN_ATTEMPT_SECONDS = 0.05
MAX_DETAIL_CHARS = 500


class CacheLike(Protocol):
    """The subset of Django's cache API the client uses (``django.core.cache.cache``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, timeout: float | None = ...) -> Any: ...

    def add(self, key: str, value: Any, timeout: float | None = ...) -> bool: ...

    def delete(self, key: str) -> Any: ...


@dataclass
class _CallState:
    """Per-call bookkeeping shared by the attempts of one logical request."""

    auth_retried: bool = False


# --- helpers (pure, unit-testable) -------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Returns ``None`` when absent or unparseable, never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_error_body(body: Any) -> tuple[int | str | None, str | None, str | None]:
    """``(code, domain, message)`` from an Acronis error body.

    Section 10 documents ``{"error": {"code", "message", "domain", ...}}``; task manager
    and alert errors put ``code``/``domain``/``message`` at the top level; the token
    endpoint may answer the OAuth2 shape ``{"error": "invalid_client",
    "error_description": ...}``. ``code`` may be an int or a string.
    """
    if not isinstance(body, Mapping):
        return None, None, None
    err = body.get("error")
    if isinstance(err, str):
        return err, None, _as_text(body.get("error_description") or body.get("message"))
    src: Mapping[str, Any] = err if isinstance(err, Mapping) else body
    code = src.get("code")
    if isinstance(code, bool) or not isinstance(code, int | str):
        code = None
    domain = _as_text(src.get("domain"))
    message = _as_text(src.get("message") or src.get("reason") or src.get("error_description"))
    if message is None:
        details = src.get("details")
        if isinstance(details, Mapping):
            message = _as_text(details.get("info"))
    return code, domain, message


def normalize_base_url(base_url: str) -> str:
    """Data-center URL without trailing slash or ``/api`` suffix.

    Every path in the spec starts with ``/api/``; the seed's own example configuration
    stores ``https://ecs.evolumia.cloud/api/``, so both spellings must work.
    """
    url = (base_url or "").strip().rstrip("/")
    if url.lower().endswith("/api"):
        url = url[: -len("/api")]
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("Acronis base_url must be an http(s) URL with a host")
    return url


def format_rfc3339(value: datetime) -> str:
    """``2024-05-01T00:00:00Z``; naive datetimes are taken as UTC.

    Truncated to whole seconds: with ``gt()`` that can only re-include activities of the
    same second (callers deduplicate by ``idString``), never skip one.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def same_guid(a: Any, b: Any) -> bool:
    """Case-insensitive GUID equality (section 0: GUID case is not consistent)."""
    return isinstance(a, str) and isinstance(b, str) and a.strip().lower() == b.strip().lower()


def _as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _truncate(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


# --- the client --------------------------------------------------------------------------


class AcronisClient:
    """Synchronous client for one Acronis API client (client id + secret).

    Args:
        base_url: data-center URL, e.g. ``https://eu2-cloud.acronis.com`` (an ``/api``
            suffix is accepted and dropped).
        client_id, client_secret: the API client's credentials.
        cache: an object with Django's cache API (``get``/``set``/``add``/``delete``),
            shared by all workers so they share one token.
        cache_key_prefix: namespace for the token and lock keys.
        timeout: seconds for one HTTP exchange (connect, read, write, pool).
        deadline: seconds for one logical call, all retries and waits included. With
            pagination it applies per page.
        transport: optional httpx transport (e.g. for proxies); tests use real HTTP.
        tenant_scope: a customer tenant UUID to request a customer-scoped token
            (section 1, ``scope=urn:acronis.com:tenant-id:<uuid>``); cached separately.
        refresh_margin: refresh this many seconds before ``expires_on``, but never later
            than half-way through a token's lifetime (keeps short test lifetimes useful).
        backoff_initial, backoff_max: exponential backoff bounds in seconds.

    The client is thread-safe; create one per credential set and reuse it.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        cache: CacheLike,
        cache_key_prefix: str,
        timeout: float = 10.0,
        deadline: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        tenant_scope: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        backoff_initial: float = 0.5,
        backoff_max: float = 8.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("Acronis client_id and client_secret are required")
        self.base_url = normalize_base_url(base_url)
        self.client_id = client_id
        self._client_secret = client_secret
        self.cache = cache
        self.timeout = float(timeout)
        self.deadline = float(deadline)
        self.tenant_scope = tenant_scope
        self.refresh_margin = float(refresh_margin)
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=backoff_initial, max=backoff_max, jitter=backoff_initial / 2
        )
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=self.timeout,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "backupplatform-acronis/1.0"},
        )
        # The secret is part of the fingerprint so a changed secret never reuses a token
        # or a remembered failure of the old one; a truncated SHA-256 of a random API
        # secret does not reveal it.
        fingerprint = hashlib.sha256(
            "\0".join((self.base_url, client_id, client_secret, tenant_scope or "")).encode()
        ).hexdigest()[:24]
        self._token_key = f"{cache_key_prefix}:token:{fingerprint}"
        self._lock_key = f"{self._token_key}:lock"
        self._failed_key = f"{self._token_key}:failed"
        self._lock_ttl = math.ceil(self.timeout) + 5
        self._basic_auth = httpx.BasicAuth(client_id, client_secret)
        # Strings that must never leave this object in an error message: the secret and
        # the Basic credential it travels in.
        self._secrets: set[str] = {
            client_secret,
            base64.b64encode(f"{client_id}:{client_secret}".encode()).decode(),
        }
        self._recent_tokens: deque[str] = deque(maxlen=4)

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections."""
        self._http.close()

    def __enter__(self) -> AcronisClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AcronisClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    # -- public API: generic ------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` (relative to the base URL) and return the decoded JSON body."""
        return self._request_json("GET", path, params=params)

    def iter_pages(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """Yield each page body of a cursor-paged list (section 9).

        The first request sends ``params``; later ones only ``after`` (the cursor encodes
        the original query) and ``limit`` if it was given. Stops when ``after`` is
        missing, a page has no items, or a cursor repeats (a server bug that would loop).
        """
        query: dict[str, Any] = dict(params or {})
        limit = query.get("limit")
        seen: set[str] = set()
        while True:
            body = self._request_json("GET", path, params=query)
            if not isinstance(body, dict):
                raise AcronisDataError(technical=f"GET {path}: page is not a JSON object")
            items = body.get("items")
            if items is None:
                items = []
            if not isinstance(items, list):
                raise AcronisDataError(technical=f"GET {path}: 'items' is not a list")
            yield body
            if not items:
                return
            paging = body.get("paging")
            cursors = paging.get("cursors") if isinstance(paging, dict) else None
            after = cursors.get("after") if isinstance(cursors, dict) else None
            if not after or not isinstance(after, str):
                return
            if after in seen:
                logger.warning(
                    "Acronis GET %s returned a cursor it already returned; stopping", path
                )
                return
            seen.add(after)
            query = {"after": after}
            if limit is not None:
                query["limit"] = limit

    def iter_items(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """Yield the items of every page of ``path`` (see :meth:`iter_pages`)."""
        for page in self.iter_pages(path, params):
            yield from page.get("items") or []

    def invalidate_token(self) -> None:
        """Forget the cached token (e.g. after the API client was re-created upstream)."""
        self.cache.delete(self._token_key)
        self.cache.delete(self._failed_key)

    # -- public API: endpoints ----------------------------------------------------------

    def get_token_info(self) -> dict:
        """``GET /api/2/clients/{client_id}`` (section 2): the cheapest authenticated call.

        Returns the raw body: ``{type, tenant_id, data: {client_name}, created_by, ...}``.
        """
        body = self._request_json("GET", f"/api/2/clients/{quote(self.client_id, safe='')}")
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
        started = time.monotonic()
        token_cached = self._cached_token() is not None
        self._with_retries("POST", TOKEN_PATH, self._get_token)
        token_done = time.monotonic()
        info = self.get_token_info()
        done = time.monotonic()
        return {
            "api_status": "connected",
            "token_valid": True,
            "token_cached": token_cached,
            "token_time_ms": _ms(token_done - started),
            "response_time_ms": _ms(done - token_done),
            "total_time_ms": _ms(done - started),
            "tenant_id": info.get("tenant_id"),
            "client": info,
        }

    def list_agents(self, *, tenant_id: str | int | None = None, limit: int = 100) -> list[dict]:
        """All agents (section 3), every page. ``tenant_id`` is the legacy integer id."""
        params: dict[str, Any] = {"limit": limit}
        if tenant_id is not None:
            params["tenant_id"] = str(tenant_id)
        return list(self.iter_items("/api/agent_manager/v2/agents", params))

    def get_agent(self, agent_id: str) -> dict:
        """One agent by GUID (section 3).

        Raises ``AcronisInvalidAgentId`` (before any call) for a non-GUID and
        ``AcronisAgentNotFound`` on an upstream 404.
        """
        try:
            uuid.UUID(str(agent_id))
        except ValueError:
            raise AcronisInvalidAgentId(technical=f"not a GUID: {str(agent_id)[:64]!r}") from None
        path = f"/api/agent_manager/v2/agents/{quote(str(agent_id), safe='')}"
        try:
            body = self._request_json("GET", path)
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

    def list_workloads(
        self,
        *,
        tenant_id: str | None = None,
        workload_type: str | None = None,
        include_attributes: bool = False,
        limit: int = 100,
    ) -> list[dict]:
        """All workloads from Workload Management v5 (section 4a); items carry ``agent_id``."""
        params: dict[str, Any] = {"limit": limit}
        if tenant_id is not None:
            params["tenant_id"] = tenant_id
        if workload_type is not None:
            params["type"] = workload_type
        if include_attributes:
            params["include_all_attributes"] = "true"
        return list(self.iter_items("/api/workload_management/v5/workloads", params))

    def list_resources(self, *, resource_type: str | None = None, limit: int = 100) -> list[dict]:
        """All resources from Resource Management v4 (section 4b)."""
        params: dict[str, Any] = {"limit": limit}
        if resource_type is not None:
            params["type"] = resource_type
        return list(self.iter_items("/api/resource_management/v4/resources", params))

    def list_resource_statuses(
        self,
        *,
        resource_type: str | None = None,
        include_attributes: bool = False,
        limit: int = 100,
    ) -> list[dict]:
        """Protection status per resource (section 4c): ``aggregate``, ``context``, ``policies``."""
        params: dict[str, Any] = {"limit": limit}
        if resource_type is not None:
            params["type"] = resource_type
        if include_attributes:
            params["include_attributes"] = "true"
        return list(self.iter_items("/api/resource_management/v4/resource_statuses", params))

    def list_policy_statuses(self, *, tenant_id: str | None = None, limit: int = 100) -> list[dict]:
        """Policy statuses (section 4d); ``context`` carries ``agent_id`` and ``agent_name``."""
        params: dict[str, Any] = {"limit": limit}
        if tenant_id is not None:
            params["tenant_id"] = tenant_id
        return list(self.iter_items("/api/policy_management/v4/policy_statuses", params))

    def iter_activities(
        self,
        *,
        policy_type: str | None = "backup",
        completed_after: datetime | None = None,
        resource_id: str | None = None,
        state: str | list[str] | None = None,
        result_code: str | list[str] | None = None,
        order: str | None = None,
        limit: int = 100,
    ) -> Iterator[dict]:
        """Yield Task Manager v2 activities (section 6), page by page.

        Filters are sent server-side (``policyType``, ``completedAt=gt(...)``,
        ``resourceId``, ``state``, ``resultCode``, ``order``). ``resourceId`` is only
        third-party-verified, so the resource filter is applied again here,
        case-insensitively. Items are raw; use ``idString`` (not the 64-bit ``id``).
        """
        params: dict[str, Any] = {"limit": limit}
        if policy_type:
            params["policyType"] = policy_type
        if completed_after is not None:
            params["completedAt"] = f"gt({format_rfc3339(completed_after)})"
        if resource_id:
            params["resourceId"] = resource_id
        if state:
            params["state"] = state
        if result_code:
            params["resultCode"] = result_code
        if order:
            params["order"] = order
        for item in self.iter_items("/api/task_manager/v2/activities", params):
            if resource_id:
                resource = item.get("resource") if isinstance(item, dict) else None
                if not isinstance(resource, dict) or not same_guid(resource.get("id"), resource_id):
                    continue
            yield item

    def list_activities(
        self,
        policy_type: str | None = "backup",
        completed_after: datetime | None = None,
        resource_id: str | None = None,
        limit: int = 100,
        *,
        state: str | list[str] | None = None,
        result_code: str | list[str] | None = None,
        order: str | None = None,
    ) -> list[dict]:
        """All matching activities as a list (see :meth:`iter_activities`)."""
        return list(
            self.iter_activities(
                policy_type=policy_type,
                completed_after=completed_after,
                resource_id=resource_id,
                state=state,
                result_code=result_code,
                order=order,
                limit=limit,
            )
        )

    # -- request machinery --------------------------------------------------------------

    def _request_json(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None
    ) -> Any:
        """One logical call: token, send, 401 refresh, retries within ``deadline``."""
        state = _CallState()
        return self._with_retries(
            method,
            path,
            lambda deadline_at: self._attempt(method, path, params, deadline_at, state),
        )

    def _with_retries(self, method: str, path: str, fn: Callable[[float], Any]) -> Any:
        """Run ``fn(deadline_at)`` with the retry policy (section 10) within ``deadline``."""
        deadline_at = time.monotonic() + self.deadline
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, AcronisError) and exc.retryable
            ),
            wait=self._wait,
            stop=self._stop_at(deadline_at),
            before_sleep=self._log_retry(method, path),
            reraise=True,
        )
        return retrying(fn, deadline_at)

    def _attempt(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        deadline_at: float,
        state: _CallState,
    ) -> Any:
        token = self._get_token(deadline_at)
        response = self._send(
            method, path, deadline_at=deadline_at, params=params, headers=self._bearer(token)
        )
        if response.status_code == 401:
            if state.auth_retried:
                raise self._error_from_response(method, path, response, AcronisAuthFailed)
            # Section 1: on a 401, fetch a new token once and retry.
            state.auth_retried = True
            logger.info("Acronis %s %s answered 401; refreshing the token once", method, path)
            self._drop_token(token)
            token = self._get_token(deadline_at)
            response = self._send(
                method, path, deadline_at=deadline_at, params=params, headers=self._bearer(token)
            )
            if response.status_code == 401:
                raise self._error_from_response(method, path, response, AcronisAuthFailed)
        if response.status_code >= 400:
            raise self._error_from_response(method, path, response)
        return self._decode(method, path, response)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, AcronisError) and exc.retry_after is not None:
            return exc.retry_after
        return self._backoff(retry_state)

    @staticmethod
    def _stop_at(deadline_at: float) -> Callable[[tenacity.RetryCallState], bool]:
        def stop(retry_state: tenacity.RetryCallState) -> bool:
            # tenacity computes the wait before asking stop, so a Retry-After longer than
            # what is left of the deadline stops here and re-raises AcronisRateLimited.
            after_sleep = time.monotonic() + (retry_state.upcoming_sleep or 0.0)
            return after_sleep + MIN_ATTEMPT_SECONDS > deadline_at

        return stop

    @staticmethod
    def _log_retry(method: str, path: str) -> Callable[[tenacity.RetryCallState], None]:
        def before_sleep(retry_state: tenacity.RetryCallState) -> None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            logger.info(
                "Acronis %s %s failed (%s, attempt %d); retrying in %.2fs",
                method,
                path,
                getattr(exc, "code", type(exc).__name__),
                retry_state.attempt_number,
                retry_state.upcoming_sleep,
            )

        return before_sleep

    def _bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _send(self, method: str, path: str, *, deadline_at: float, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, bounded by ``timeout`` and what is left of the deadline.

        httpx exceptions are translated and not chained (``from None``): they carry the
        request, whose headers hold the token or the Basic credentials.
        """
        remaining = deadline_at - time.monotonic()
        if remaining < MIN_ATTEMPT_SECONDS:
            raise AcronisTimeoutError(
                technical=f"{method} {path}: deadline of {self.deadline:g}s exhausted",
                retryable=False,
            )
        timeout = min(self.timeout, remaining)
        started = time.monotonic()
        try:
            response = self._http.request(method, path, timeout=timeout, **kwargs)
        except httpx.TimeoutException as exc:
            raise AcronisTimeoutError(
                technical=self._scrub(f"{method} {path}: {type(exc).__name__} after {timeout:.2f}s")
            ) from None
        except httpx.UnsupportedProtocol as exc:
            raise AcronisConnectionError(
                technical=self._scrub(f"{method} {path}: {exc}"), retryable=False
            ) from None
        except httpx.ConnectError as exc:
            raise AcronisConnectionError(
                technical=self._scrub(f"{method} {path}: {type(exc).__name__}: {exc}")
            ) from None
        except httpx.TransportError as exc:
            raise AcronisNetworkError(
                technical=self._scrub(f"{method} {path}: {type(exc).__name__}: {exc}")
            ) from None
        logger.debug(
            "Acronis %s %s -> %s (%.0f ms)",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AcronisDataError(
                technical=f"{method} {path} -> HTTP {response.status_code}: body is not JSON"
            ) from None

    def _error_from_response(
        self,
        method: str,
        path: str,
        response: httpx.Response,
        cls: type[AcronisError] | None = None,
    ) -> AcronisError:
        """Build the error for an upstream error response (section 10)."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        code, domain, message = parse_error_body(body)
        if message is None and body is None and response.text:
            message = " ".join(response.text.split())[:200]
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if cls is None:
            if status == 429 or (
                status == 503 and (retry_after is not None or code == "tooManyRequests")
            ):
                cls = AcronisRateLimited
            elif status >= 500:
                cls = AcronisServerError
            elif status == 401:
                cls = AcronisAuthFailed
            elif status == 403:
                cls = AcronisPermissionError
            elif status == 404:
                cls = AcronisNotFound
            elif status >= 400:
                cls = AcronisClientError
            else:
                cls = AcronisApiError
        tag = "/".join(str(part) for part in (domain, code) if part is not None)
        technical = f"{method} {path} -> HTTP {status}"
        if tag:
            technical += f" [{tag}]"
        if message:
            technical += f": {message}"
        user_message = cls.default_message
        if message:
            user_message = f"{user_message} Acronis said: {_truncate(message, 300)}"
        return cls(
            self._scrub(user_message),
            technical=self._scrub(_truncate(technical)),
            retry_after=retry_after,
            upstream_status=status,
            upstream_code=code,
            upstream_domain=domain,
        )

    def _scrub(self, text: str) -> str:
        for secret in (*self._secrets, *tuple(self._recent_tokens)):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    # -- token handling (section 1) -----------------------------------------------------

    def _cached_token(self) -> str | None:
        value = self.cache.get(self._token_key)
        if not isinstance(value, dict):
            return None
        token = value.get("access_token")
        try:
            refresh_at = float(value.get("refresh_at", 0))
        except (TypeError, ValueError):
            return None
        if not isinstance(token, str) or not token or refresh_at <= time.time():
            return None
        if token not in self._recent_tokens:
            self._recent_tokens.append(token)
        return token

    def _drop_token(self, token: str) -> None:
        """Delete the cached token, unless another worker already replaced it."""
        value = self.cache.get(self._token_key)
        if isinstance(value, dict) and value.get("access_token") == token:
            self.cache.delete(self._token_key)

    def _get_token(self, deadline_at: float) -> str:
        """A valid token from the cache, or fetched by exactly one worker at a time.

        ``cache.add`` is atomic in every Django backend, so it serves as the lock; the
        lock expires by itself (``timeout`` + 5 s) if its holder dies. Waiters poll the
        cache until the token appears, the holder gives up, or the deadline passes.
        """
        token = self._cached_token()
        if token:
            return token
        owner = uuid.uuid4().hex
        while True:
            if time.monotonic() >= deadline_at:
                raise AcronisTimeoutError(
                    technical="timed out waiting for another worker's token request"
                )
            if self.cache.add(self._lock_key, owner, self._lock_ttl):
                try:
                    token = self._cached_token()  # a holder may have finished just now
                    if token:
                        return token
                    return self._fetch_token(deadline_at)
                finally:
                    # Not atomic, but only deletes a lock we still own.
                    if self.cache.get(self._lock_key) == owner:
                        self.cache.delete(self._lock_key)
            wait_until = min(deadline_at, time.monotonic() + self._lock_ttl)
            while time.monotonic() < wait_until:
                time.sleep(TOKEN_POLL_INTERVAL)
                token = self._cached_token()
                if token:
                    return token
                failure = self.cache.get(self._failed_key)
                if isinstance(failure, dict):
                    raise AcronisCredentialsInvalid(
                        failure.get("message"),
                        technical=failure.get("technical"),
                        upstream_status=failure.get("upstream_status"),
                    )
                if self.cache.get(self._lock_key) is None:
                    break  # holder gave up without a token (e.g. timeout): try ourselves

    def _fetch_token(self, deadline_at: float) -> str:
        """``POST /api/2/idp/token`` with Basic auth; store the token in the cache."""
        data = {"grant_type": "client_credentials"}
        if self.tenant_scope:
            data["scope"] = f"urn:acronis.com:tenant-id:{self.tenant_scope}"
        response = self._send(
            "POST", TOKEN_PATH, deadline_at=deadline_at, data=data, auth=self._basic_auth
        )
        if response.status_code in (400, 401, 403):
            error = self._error_from_response(
                "POST", TOKEN_PATH, response, AcronisCredentialsInvalid
            )
            self.cache.set(
                self._failed_key,
                {
                    "message": error.message,
                    "technical": error.technical,
                    "upstream_status": error.upstream_status,
                },
                CREDENTIALS_FAILURE_TTL,
            )
            raise error
        if response.status_code >= 400:
            raise self._error_from_response("POST", TOKEN_PATH, response)
        body = self._decode("POST", TOKEN_PATH, response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AcronisTokenInvalid(
                technical="POST /api/2/idp/token: no access_token in the answer"
            )
        now = time.time()
        try:
            expires_on = float(body["expires_on"])
            if not math.isfinite(expires_on):
                raise ValueError
        except (KeyError, TypeError, ValueError):
            expires_on = now + DEFAULT_TOKEN_LIFETIME
        lifetime = expires_on - now
        if lifetime <= 0:
            # Clock skew, most likely: keep it briefly; a 401 would refresh it anyway.
            logger.warning("Acronis token expires_on lies in the past; check the clock")
            lifetime = 60.0
        refresh_at = now + max(lifetime - self.refresh_margin, lifetime / 2)
        self._recent_tokens.append(token)
        self.cache.set(
            self._token_key,
            {"access_token": token, "expires_on": expires_on, "refresh_at": refresh_at},
            max(1, math.ceil(refresh_at - now)),
        )
        self.cache.delete(self._failed_key)
        logger.debug("Acronis token obtained; refresh in %.0fs", refresh_at - now)
        return token
