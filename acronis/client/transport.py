"""One HTTP exchange with Acronis, and the translation of its outcome into our errors.

httpx exceptions are translated and not chained (``from None``): they carry the
request, whose headers hold the token or the Basic credentials. Every text that leaves
this module goes through :meth:`Transport.scrub`.
"""

from __future__ import annotations

import base64
import logging
import time
from collections import deque
from typing import Any

import httpx

from acronis.client.util import parse_error_body, parse_retry_after, truncate
from acronis.errors import (
    AcronisApiError,
    AcronisAuthFailed,
    AcronisClientError,
    AcronisConfigInvalid,
    AcronisConnectionError,
    AcronisDataError,
    AcronisError,
    AcronisNetworkError,
    AcronisNotFound,
    AcronisPermissionError,
    AcronisRateLimited,
    AcronisServerError,
    AcronisTimeoutError,
)

logger = logging.getLogger(__name__)

# Below this, a further attempt cannot usefully complete before the deadline.
MIN_ATTEMPT_SECONDS = 0.05


def is_rate_limited(status: int, retry_after: float | None, code: Any) -> bool:
    """Section 10: go-appkit answers 429, or 503 for limits not keyed by identity."""
    return status == 429 or (status == 503 and (retry_after is not None or code == "tooManyRequests"))


def _error_class(status: int) -> type[AcronisError]:
    if status >= 500:
        return AcronisServerError
    return {401: AcronisAuthFailed, 403: AcronisPermissionError, 404: AcronisNotFound}.get(
        status, AcronisClientError if status >= 400 else AcronisApiError
    )


class Transport:
    """An ``httpx.Client`` for one data center plus what must never leak from it.

    Args:
        base_url: normalised data-center URL.
        client_id, client_secret: only to know which strings to scrub.
        timeout: seconds for one exchange; ``connect_timeout`` caps the TCP/TLS connect
            (an unreachable data center should not cost the full read timeout).
        transport: optional httpx transport (proxies); tests use real HTTP.
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str,
        client_secret: str,
        timeout: float,
        connect_timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.timeout = float(timeout)
        self.connect_timeout = min(float(connect_timeout), self.timeout)
        self._http = httpx.Client(
            base_url=base_url,
            transport=transport,
            timeout=self.timeout,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "backupplatform-acronis/1.0"},
        )
        # Strings that must never leave this object in an error message: the secret, the
        # Basic credential it travels in, and the last tokens seen.
        self._secrets = {
            client_secret,
            base64.b64encode(f"{client_id}:{client_secret}".encode()).decode(),
        }
        self._recent_tokens: deque[str] = deque(maxlen=8)

    def close(self) -> None:
        self._http.close()

    def remember_token(self, token: str) -> None:
        if token not in self._recent_tokens:
            self._recent_tokens.append(token)

    def scrub(self, text: str) -> str:
        for secret in (*self._secrets, *tuple(self._recent_tokens)):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    def send(self, method: str, path: str, *, deadline_at: float, **kwargs: Any) -> httpx.Response:
        """One exchange, bounded by ``timeout`` and what is left of the deadline.

        Errors raised because nothing answered carry ``unreachable = True``.
        """
        remaining = deadline_at - time.monotonic()
        if remaining < MIN_ATTEMPT_SECONDS:
            raise AcronisTimeoutError(technical=f"{method} {path}: call deadline exhausted", retryable=False)
        timeout = min(self.timeout, remaining)
        limits = httpx.Timeout(timeout, connect=min(self.connect_timeout, timeout))
        started = time.monotonic()
        try:
            response = self._http.request(method, path, timeout=limits, **kwargs)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise AcronisConfigInvalid(technical=self.scrub(f"{method} {path}: {type(exc).__name__}: {exc}")) from None
        except httpx.TransportError as exc:
            raise self._transport_error(method, path, exc, timeout) from None
        # Our own line, without the query (cursors and filters): httpx's own request log
        # is silenced in settings.LOGGING.
        logger.debug(
            "Acronis %s %s -> %s (%.0f ms)",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _transport_error(self, method: str, path: str, exc: httpx.TransportError, timeout: float) -> AcronisError:
        if isinstance(exc, httpx.TimeoutException):
            error: AcronisError = AcronisTimeoutError(
                technical=f"{method} {path}: {type(exc).__name__} after {timeout:.2f}s"
            )
        elif isinstance(exc, httpx.ConnectError):
            error = AcronisConnectionError(technical=self.scrub(f"{method} {path}: {type(exc).__name__}: {exc}"))
        else:
            error = AcronisNetworkError(technical=self.scrub(f"{method} {path}: {type(exc).__name__}: {exc}"))
        # Protocol errors mean something answered, even if badly.
        error.unreachable = isinstance(exc, httpx.TimeoutException | httpx.NetworkError)
        return error

    def decode(self, method: str, path: str, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AcronisDataError(
                technical=f"{method} {path} -> HTTP {response.status_code}: body is not JSON"
            ) from None

    def error_from_response(
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
            limited = is_rate_limited(status, retry_after, code)
            cls = AcronisRateLimited if limited else _error_class(status)
        tag = "/".join(str(part) for part in (domain, code) if part is not None)
        technical = f"{method} {path} -> HTTP {status}"
        if tag:
            technical += f" [{tag}]"
        if message:
            technical += f": {message}"
        user_message = cls.default_message
        if message:
            user_message = f"{user_message} Acronis said: {truncate(message, 300)}"
        return cls(
            self.scrub(user_message),
            technical=self.scrub(truncate(technical)),
            retry_after=retry_after,
            upstream_status=status,
            upstream_code=code,
            upstream_domain=domain,
        )
