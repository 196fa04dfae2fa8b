"""OAuth2 tokens (section 1), kept in the shared cache and fetched single-flight.

One token per (data center, client, secret, tenant scope) lives in the cache (the
Django cache in production), so every worker process reuses it; it is refreshed ahead
of ``expires_on``. Fetching is single-flight across threads and processes:
``cache.add`` takes a short lock, the others poll the cache. A refused credential is
remembered for a few seconds so that the waiters fail with it instead of each asking
the token endpoint again.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

from acronis.client.retry import Call
from acronis.errors import AcronisCredentialsInvalid, AcronisTimeoutError, AcronisTokenInvalid

logger = logging.getLogger(__name__)

# Section 1: tokens live 2 hours; fall back to that when ``expires_on`` is missing.
DEFAULT_TOKEN_LIFETIME = 7200.0
# Section 1: Acronis's samples refresh 15 minutes before expiry.
DEFAULT_REFRESH_MARGIN = 900.0
# How long a waiter sleeps between looks at the cache while another worker fetches.
TOKEN_POLL_INTERVAL = 0.02
CREDENTIALS_FAILURE_TTL = 5

# ``fetch(call)`` returns the token endpoint's JSON body or raises AcronisError.
Fetch = Callable[[Call], Any]


class TokenStore:
    """A cached bearer token and the single-flight fetching of a new one."""

    def __init__(
        self,
        cache: Any,
        key: str,
        fetch: Fetch,
        *,
        lock_ttl: int,
        refresh_margin: float,
        on_token: Callable[[str], None],
    ) -> None:
        self.cache = cache
        self.key = key
        self._lock_key = f"{key}:lock"
        self._failed_key = f"{key}:failed"
        self._fetch = fetch
        self._lock_ttl = lock_ttl
        self.refresh_margin = refresh_margin
        self._on_token = on_token  # lets the transport scrub tokens from error texts

    def cached(self) -> str | None:
        value = self.cache.get(self.key)
        if not isinstance(value, dict):
            return None
        token = value.get("access_token")
        try:
            refresh_at = float(value.get("refresh_at", 0))
        except (TypeError, ValueError):
            return None
        if not isinstance(token, str) or not token or refresh_at <= time.time():
            return None
        self._on_token(token)
        return token

    def drop(self, token: str) -> None:
        """Delete the cached token, unless another worker already replaced it."""
        value = self.cache.get(self.key)
        if isinstance(value, dict) and value.get("access_token") == token:
            self.cache.delete(self.key)

    def get(self, call: Call) -> str:
        """A valid token from the cache, or fetched by exactly one worker at a time.

        ``cache.add`` is atomic in every Django backend, so it serves as the lock; the
        lock expires by itself if its holder dies. Waiters poll the cache until the token
        appears, the holder gives up, or the deadline passes.
        """
        token = self.cached()
        if token:
            return token
        owner = uuid.uuid4().hex
        while True:
            if time.monotonic() >= call.deadline_at:
                raise AcronisTimeoutError(technical="timed out waiting for another worker's token request")
            if self.cache.add(self._lock_key, owner, self._lock_ttl):
                try:
                    return self.cached() or self._fetch_and_store(call)
                finally:
                    # Not atomic, but only deletes a lock we still own.
                    if self.cache.get(self._lock_key) == owner:
                        self.cache.delete(self._lock_key)
            token = self._wait_for_holder(call.deadline_at)
            if token:
                return token

    def _wait_for_holder(self, deadline_at: float) -> str | None:
        wait_until = min(deadline_at, time.monotonic() + self._lock_ttl)
        while time.monotonic() < wait_until:
            time.sleep(TOKEN_POLL_INTERVAL)
            token = self.cached()
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
                return None  # holder gave up without a token (e.g. timeout): try ourselves
        return None

    def _fetch_and_store(self, call: Call) -> str:
        try:
            body = self._fetch(call)
        except AcronisCredentialsInvalid as error:
            self.cache.set(
                self._failed_key,
                {
                    "message": error.message,
                    "technical": error.technical,
                    "upstream_status": error.upstream_status,
                },
                CREDENTIALS_FAILURE_TTL,
            )
            raise
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AcronisTokenInvalid(technical="POST /api/2/idp/token: no access_token in the answer")
        self._on_token(token)
        now = time.time()
        lifetime = _expires_on(body, now) - now
        if lifetime <= 0:
            # Clock skew, most likely: keep it briefly; a 401 would refresh it anyway.
            logger.warning("Acronis token expires_on lies in the past; check the clock")
            lifetime = 60.0
        # Never later than half-way through a lifetime (keeps short test lifetimes useful).
        refresh_in = max(lifetime - self.refresh_margin, lifetime / 2)
        self.cache.set(
            self.key,
            {"access_token": token, "expires_on": now + lifetime, "refresh_at": now + refresh_in},
            max(1, math.ceil(refresh_in)),
        )
        self.cache.delete(self._failed_key)
        logger.debug("Acronis token obtained; refresh in %.0fs", refresh_in)
        return token


def _expires_on(body: dict, now: float) -> float:
    """Section 1: ``expires_on`` is absolute Unix seconds; ``now + 7200`` when missing."""
    try:
        expires_on = float(body["expires_on"])
    except (KeyError, TypeError, ValueError):
        return now + DEFAULT_TOKEN_LIFETIME
    return expires_on if math.isfinite(expires_on) else now + DEFAULT_TOKEN_LIFETIME
