"""The request machinery every endpoint call goes through: token, guard, send, retry.

What one logical call does:

1. The retry policy (``retry.py``) runs attempts within ``deadline``.
2. Each attempt takes a token (``tokens.py``), asks the tenant's guard (``guard.py``)
   whether the upstream may be tried at all (circuit breaker, rate-limit backoff), then
   sends (``transport.py``) and reports the outcome to the guard.
3. A 401 gets one fresh token and one more try (section 1); a second 401 is
   ``ACRONIS_AUTH_FAILED``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from acronis.client.guard import UpstreamGuard
from acronis.client.retry import Call, RetryPolicy
from acronis.client.tokens import DEFAULT_REFRESH_MARGIN, TokenStore
from acronis.client.transport import Transport
from acronis.client.util import ms, normalize_base_url
from acronis.errors import (
    AcronisAuthFailed,
    AcronisCredentialsInvalid,
    AcronisError,
    AcronisPermissionError,
)

logger = logging.getLogger(__name__)

TOKEN_PATH = "/api/2/idp/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class CacheLike(Protocol):
    """The subset of Django's cache API the client uses (``django.core.cache.cache``)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def get_many(self, keys: list[str]) -> dict[str, Any]: ...

    def set(self, key: str, value: Any, timeout: float | None = ...) -> Any: ...

    def add(self, key: str, value: Any, timeout: float | None = ...) -> bool: ...

    def incr(self, key: str, delta: int = ...) -> int: ...

    def delete(self, key: str) -> Any: ...


def _fingerprint(*parts: str) -> str:
    # A changed secret never reuses a token or a remembered failure of the old one; a
    # truncated SHA-256 of a random API secret does not reveal it.
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


class ClientCore:
    """Construction and request machinery of :class:`acronis.client.AcronisClient`.

    Args:
        base_url: data-center URL, e.g. ``https://eu2-cloud.acronis.com`` (an ``/api``
            suffix is accepted and dropped); ``ValueError`` if unusable.
        client_id, client_secret: the API client's credentials.
        cache: an object with Django's cache API, shared by all workers so they share
            tokens, the circuit breaker and the rate-limit backoff.
        cache_key_prefix: namespace for those keys (one tenant).
        timeout: seconds for one HTTP exchange; ``connect_timeout`` caps its connect.
        deadline: seconds for one logical call, all retries and waits included. With
            pagination it applies per page.
        transport: optional httpx transport (e.g. for proxies); tests use real HTTP.
        tenant_scope: a customer tenant UUID: calls then use a customer-scoped token
            (section 1), exchanged for the API client's own token; cached separately.
        refresh_margin: refresh this many seconds before ``expires_on``, but never later
            than half-way through a token's lifetime.
        max_attempts, backoff_initial, backoff_max, max_wait: the retry policy
            (``retry.py``).
        breaker_threshold, breaker_cooldown: the circuit breaker (``guard.py``).

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
        connect_timeout: float = 5.0,
        deadline: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        tenant_scope: str | None = None,
        refresh_margin: float = DEFAULT_REFRESH_MARGIN,
        max_attempts: int = 3,
        backoff_initial: float = 0.5,
        backoff_max: float = 60.0,
        max_wait: float = 5.0,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 15.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("Acronis client_id and client_secret are required")
        self.base_url = normalize_base_url(base_url)
        self.client_id = client_id
        self.tenant_scope = tenant_scope or None
        self.cache = cache
        self._transport = Transport(
            self.base_url,
            client_id=client_id,
            client_secret=client_secret,
            timeout=timeout,
            connect_timeout=connect_timeout,
            transport=transport,
        )
        upstream = _fingerprint(self.base_url, client_id)
        self._guard = UpstreamGuard(
            cache,
            f"{cache_key_prefix}:upstream:{upstream}",
            threshold=breaker_threshold,
            cooldown=breaker_cooldown,
        )
        self._policy = RetryPolicy(
            self._guard,
            max_attempts=max_attempts,
            deadline=deadline,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            max_wait=max_wait,
        )
        self._basic_auth = httpx.BasicAuth(client_id, client_secret)
        self._partner_tokens, self._tokens = self._token_stores(cache_key_prefix, client_secret, float(refresh_margin))

    def _token_stores(self, prefix: str, client_secret: str, refresh_margin: float) -> tuple[TokenStore, TokenStore]:
        """The API client's own token store, and the one calls use (scoped or the same)."""
        options: dict[str, Any] = {
            "lock_ttl": math.ceil(self._transport.timeout) + 5,
            "refresh_margin": refresh_margin,
            "on_token": self._transport.remember_token,
        }
        own_key = _fingerprint(self.base_url, self.client_id, client_secret, "")
        own = TokenStore(self.cache, f"{prefix}:token:{own_key}", self._fetch_partner_token, **options)
        if not self.tenant_scope:
            return own, own
        scoped_key = _fingerprint(self.base_url, self.client_id, client_secret, self.tenant_scope)
        scoped = TokenStore(self.cache, f"{prefix}:token:{scoped_key}", self._fetch_scoped_token, **options)
        return own, scoped

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections."""
        self._transport.close()

    def __enter__(self) -> ClientCore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AcronisClient(base_url={self.base_url!r}, client_id={self.client_id!r})"

    def upstream_status(self) -> dict[str, Any]:
        """The shared circuit breaker and rate-limit state (see ``guard.py``)."""
        return self._guard.status()

    # -- one logical call -----------------------------------------------------------------

    def _request_json(self, method: str, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self._policy.call(method, path, lambda call: self._attempt(method, path, params, call))

    def _timed_token(self) -> dict[str, Any]:
        """A token (fetched if needed) with what it cost: for the health check."""
        started = time.monotonic()
        cached = self._tokens.cached() is not None
        self._policy.call("POST", TOKEN_PATH, self._tokens.get)
        return {"token_cached": cached, "token_time_ms": ms(time.monotonic() - started)}

    def _attempt(self, method: str, path: str, params: Mapping[str, Any] | None, call: Call) -> Any:
        token = self._tokens.get(call)
        response = self._exchange(call, method, path, params=params, headers=_bearer(token))
        if response.status_code == 401:
            if call.auth_retried:
                raise self._transport.error_from_response(method, path, response, AcronisAuthFailed)
            # Section 1: on a 401, fetch a new token once and retry.
            call.auth_retried = True
            logger.info("Acronis %s %s answered 401; refreshing the token once", method, path)
            self._tokens.drop(token)
            token = self._tokens.get(call)
            response = self._exchange(call, method, path, params=params, headers=_bearer(token))
            if response.status_code == 401:
                raise self._transport.error_from_response(method, path, response, AcronisAuthFailed)
        if response.status_code >= 400:
            raise self._transport.error_from_response(method, path, response)
        return self._transport.decode(method, path, response)

    def _exchange(self, call: Call, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange, admitted by the guard and reported to it."""
        ticket = self._guard.admit(call.id)
        try:
            response = self._transport.send(method, path, deadline_at=call.deadline_at, **kwargs)
        except AcronisError as exc:
            if exc.unreachable:
                self._guard.unreachable(ticket, exc)
            raise
        self._guard.answered(ticket, rate_limited=response.status_code in (429, 503))
        return response

    # -- tokens (section 1) ---------------------------------------------------------------

    def _fetch_partner_token(self, call: Call) -> Any:
        """``POST /api/2/idp/token``, client credentials with Basic auth."""
        response = self._exchange(
            call,
            "POST",
            TOKEN_PATH,
            data={"grant_type": "client_credentials"},
            auth=self._basic_auth,
        )
        if response.status_code in (400, 401, 403):
            raise self._transport.error_from_response("POST", TOKEN_PATH, response, AcronisCredentialsInvalid)
        return self._token_body(response)

    def _fetch_scoped_token(self, call: Call) -> Any:
        """Section 1, customer-scoped token: the API client's own token is the assertion
        of a jwt-bearer grant for ``scope=urn:acronis.com:tenant-id:<customer uuid>``."""
        for first in (True, False):
            partner = self._partner_tokens.get(call)
            form = {
                "grant_type": JWT_BEARER,
                "assertion": partner,
                "scope": f"urn:acronis.com:tenant-id:{self.tenant_scope}",
            }
            response = self._exchange(call, "POST", TOKEN_PATH, data=form, headers=_bearer(partner))
            if response.status_code == 401 and first:
                self._partner_tokens.drop(partner)  # expired early: one fresh assertion
                continue
            break
        if response.status_code == 401:
            raise self._transport.error_from_response("POST", TOKEN_PATH, response, AcronisCredentialsInvalid)
        if response.status_code in (400, 403):
            # The API client may not act for that customer (or the UUID is unknown).
            raise self._transport.error_from_response("POST", TOKEN_PATH, response, AcronisPermissionError)
        return self._token_body(response)

    def _token_body(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise self._transport.error_from_response("POST", TOKEN_PATH, response)
        return self._transport.decode("POST", TOKEN_PATH, response)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
