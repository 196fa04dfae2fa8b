"""Wire-level pieces of the fake: recorded requests, armed faults, error bodies (§10)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Injection:
    """One armed fault: the next ``times`` requests under ``path_prefix`` get it."""

    path_prefix: str
    status: int | None
    times: int | None  # None: forever
    retry_after: str | None
    delay: float | None
    shape: str
    code: int | str | None
    message: str | None


@dataclass(frozen=True)
class RecordedRequest:
    """What the fake saw and answered, for assertions."""

    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    authorization: str  # "bearer", "basic" or "" (never the credential itself)
    # Form fields of a token request, the assertion masked as "***".
    form: dict[str, list[str]] = field(default_factory=dict)
    # The customer UUID of the bearer token used, for a customer-scoped token.
    token_scope: str | None = None


class ApiError(Exception):
    """An error answer of the fake, in either body shape."""

    def __init__(self, status: int, code: int | str, message: str, *, domain: str, shape: str = "wrapped") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.domain, self.shape = (
            status,
            code,
            message,
            domain,
            shape,
        )


def domain_for(path: str) -> str:
    if path.startswith("/api/2"):
        return "PlatformAccountServer"
    if path.startswith("/api/task_manager"):
        return "TaskManager"
    if path.startswith("/api/agent_manager"):
        return "AgentManager"
    if path.startswith("/api/workload_management"):
        return "WorkloadManagement"
    if path.startswith("/api/policy_management"):
        return "PolicyManagement"
    return "ResourceManagement"


def shape_for(path: str) -> str:
    # §10: task manager and alert errors were seen with code/domain at the top level.
    return "flat" if path.startswith(("/api/task_manager", "/api/alert_manager")) else "wrapped"


DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ValidationError", "Bad request."),
    401: ("Unauthorized", "Access token is missing, invalid or expired."),
    403: ("AccessDenied", "Access denied."),
    404: ("NotFound", "Not found."),
    409: ("Conflict", "Conflict."),
    429: ("tooManyRequests", "Too many requests."),
    500: ("InternalServerError", "Internal server error."),
    502: ("BadGateway", "Bad gateway."),
    503: ("ServiceUnavailable", "Service temporarily unavailable."),
    504: ("GatewayTimeout", "Gateway timeout."),
}
