"""Errors raised by the Acronis transport layer (``acronis/client/``).

Every error carries one of the ``ACRONIS_*`` codes of the facade seed
(``seeds/acronis-integration.md``, "Error Codes Reference") plus what the facade
needs to render its error body: a human ``message``, a ``help`` hint, and a
``technical`` detail for ``details.technical_error``.

Choice of ``http_status`` (what *our* facade should answer, not what Acronis
answered; the upstream status is kept in ``upstream_status``):

* Upstream trouble of any kind is a **502 Bad Gateway**, including an upstream
  401/403. Answering 401 would tell the browser that *its own* session is bad
  and typically logs the user out, while the fix is on the integration's
  credentials. So ``ACRONIS_AUTH_FAILED`` and ``ACRONIS_CREDENTIALS_INVALID``
  are 502 as well.
* Timeouts are **504 Gateway Timeout**.
* Rate limiting is **429** with ``retry_after`` (seed, "Rate Limiting"); the
  facade should also send a ``Retry-After`` header.
* Things the caller of our API got wrong or asked for and does not exist are
  4xx: ``ACRONIS_AGENT_NOT_FOUND`` 404, ``ACRONIS_INVALID_AGENT_ID`` 400.

``technical`` never contains the client secret or a token: the client builds it
from method, path, status and the upstream error code/domain/message only, and
scrubs known secrets from it before raising.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AcronisAgentNotFound",
    "AcronisApiError",
    "AcronisAuthFailed",
    "AcronisClientError",
    "AcronisConfigInvalid",
    "AcronisConnectionError",
    "AcronisCredentialsInvalid",
    "AcronisDataError",
    "AcronisError",
    "AcronisInvalidAgentId",
    "AcronisNetworkError",
    "AcronisNotFound",
    "AcronisPermissionError",
    "AcronisRateLimited",
    "AcronisServerError",
    "AcronisTimeoutError",
    "AcronisTokenInvalid",
]


class AcronisError(Exception):
    """Base class of every error the Acronis client raises.

    Class attributes give the defaults of each subclass; the constructor may
    override any of them for one instance.

    Attributes:
        code: seed error code (``ACRONIS_*``).
        http_status: status our facade should answer with.
        message: human-readable, safe to show to an end user.
        help: a suggested next step.
        technical: upstream detail (method, path, status, upstream code and message).
        retry_after: seconds to wait before retrying, when known (rate limiting).
        upstream_status: HTTP status Acronis answered, if any.
        upstream_code: ``code`` of the upstream error body (int or str), if any.
        upstream_domain: ``domain`` of the upstream error body, if any.
        retryable: whether the client's retry loop may try the call again.
        unreachable: set by the transport when no answer came back at all (refused,
            reset, timed out): what the circuit breaker counts.
    """

    code: str = "ACRONIS_API_ERROR"
    http_status: int = 502
    default_message: str = "The Acronis API returned an error."
    default_help: str = "Try again later; if the problem persists, check the Acronis service status."
    retryable: bool = False
    unreachable: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        http_status: int | None = None,
        help: str | None = None,  # the seed calls the field "help"
        technical: str | None = None,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        upstream_code: int | str | None = None,
        upstream_domain: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.help = help or self.default_help
        self.technical = technical or ""
        self.retry_after = retry_after
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code
        self.upstream_domain = upstream_domain
        if retryable is not None:
            self.retryable = retryable
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.technical:
            return f"{self.code}: {self.message} ({self.technical})"
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def to_dict(self) -> dict[str, Any]:
        """The seed's error-body fields (the facade adds ``success`` and ``timestamp``)."""
        body: dict[str, Any] = {
            "error": self.message,
            "error_code": self.code,
            "help": self.help,
            "details": {"technical_error": self.technical},
        }
        if self.retry_after is not None:
            body["retry_after"] = int(-(-self.retry_after // 1))  # ceil, whole seconds
        return body


# --- authentication -------------------------------------------------------------------


class AcronisAuthFailed(AcronisError):
    """Acronis rejected our bearer token twice in a row (fresh token included)."""

    code = "ACRONIS_AUTH_FAILED"
    default_message = "Authentication with the Acronis API failed."
    default_help = (
        "Check that the API client is still enabled in the Acronis management console "
        "and that it has access to the requested tenant."
    )


class AcronisCredentialsInvalid(AcronisAuthFailed):
    """The token endpoint refused the client id / secret (401 or 400 there)."""

    code = "ACRONIS_CREDENTIALS_INVALID"
    default_message = "The Acronis API credentials are invalid."
    default_help = (
        "Check the client ID and client secret, and that the base URL is the data center "
        "shown when the API client was created."
    )


class AcronisTokenInvalid(AcronisAuthFailed):
    """The token endpoint answered 200 but without a usable ``access_token``."""

    code = "ACRONIS_TOKEN_INVALID"
    default_message = "The Acronis API returned an unusable access token."
    default_help = "Check that the base URL points at an Acronis data center."


class AcronisConfigInvalid(AcronisError):
    """The stored configuration cannot be used to build a request (e.g. its base URL).

    New configurations are validated when saved; this covers rows saved before a rule
    existed, so that such a row is a documented error rather than a crash.
    """

    code = "ACRONIS_CONFIG_INVALID"
    default_message = "The Acronis configuration is invalid."
    default_help = "Correct the configuration with PUT /api/acronis/config."


# --- transport --------------------------------------------------------------------------


class AcronisConnectionError(AcronisError):
    """No TCP/TLS connection could be made (refused, DNS failure, ...)."""

    code = "ACRONIS_CONNECTION_ERROR"
    default_message = "Cannot connect to the Acronis API."
    default_help = "Check the base URL and that this server can reach it (DNS, firewall, proxy)."
    retryable = True


class AcronisTimeoutError(AcronisError):
    """The upstream did not answer within the per-request timeout or the total deadline."""

    code = "ACRONIS_TIMEOUT_ERROR"
    http_status = 504
    default_message = "The request to the Acronis API timed out."
    default_help = "The Acronis service is slow or unreachable; try again in a few minutes."
    retryable = True


class AcronisNetworkError(AcronisError):
    """The connection broke mid-request (reset, protocol error)."""

    code = "ACRONIS_NETWORK_ERROR"
    default_message = "A network error occurred while talking to the Acronis API."
    default_help = "Check network connectivity between this server and Acronis, then retry."
    retryable = True


# --- HTTP status errors ----------------------------------------------------------------


class AcronisApiError(AcronisError):
    """Any upstream error response without a more specific class."""

    code = "ACRONIS_API_ERROR"


class AcronisServerError(AcronisApiError):
    """Upstream 5xx (retried with backoff before this is raised)."""

    code = "ACRONIS_SERVER_ERROR"
    default_message = "The Acronis API is experiencing a server error."
    default_help = "This is a problem on the Acronis side; try again in a few minutes."
    retryable = True


class AcronisRateLimited(AcronisApiError):
    """Upstream 429 (or 503 with ``Retry-After``); ``retry_after`` says how long to wait."""

    code = "ACRONIS_RATE_LIMITED"
    http_status = 429
    default_message = "Rate limit exceeded at the Acronis API."
    default_help = "Wait for the time given in retry_after before trying again."
    retryable = True


class AcronisClientError(AcronisApiError):
    """Upstream 4xx other than 401/429: the request we built was refused."""

    code = "ACRONIS_CLIENT_ERROR"
    default_message = "The Acronis API rejected the request."
    default_help = "Check the integration configuration; if it looks right, report this error."


class AcronisPermissionError(AcronisClientError):
    """Upstream 403: the API client lacks rights for this tenant or resource."""

    code = "ACRONIS_PERMISSION_ERROR"
    default_message = "The Acronis API client has insufficient permissions."
    default_help = "Give the API client access to the tenant in the Acronis management console."


class AcronisNotFound(AcronisClientError):
    """Upstream 404 on a path we did not expect to miss (likely a wrong data center URL)."""

    default_message = "The Acronis API did not find the requested object."


class AcronisAgentNotFound(AcronisNotFound):
    """``get_agent`` got a 404 for the agent id."""

    code = "ACRONIS_AGENT_NOT_FOUND"
    http_status = 404
    default_message = "The specified Acronis agent was not found."
    default_help = "Refresh the agent list; the agent may have been removed or belong to another tenant."


class AcronisInvalidAgentId(AcronisError):
    """The agent id given to us is not a GUID (checked before any upstream call)."""

    code = "ACRONIS_INVALID_AGENT_ID"
    http_status = 400
    default_message = "The agent ID is not a valid GUID."
    default_help = "Agent IDs look like 23effcf6-2798-4631-9a52-5785bf3af657."


# --- data ---------------------------------------------------------------------------------


class AcronisDataError(AcronisError):
    """The upstream answered 2xx with a body we cannot use (not JSON, wrong shape)."""

    code = "ACRONIS_DATA_ERROR"
    default_message = "The Acronis API returned data that could not be processed."
    default_help = "Check that the base URL points at an Acronis data center; if so, report this error."
