"""A fake Acronis Cyber Protect Cloud server on loopback (``spec/acronis-cloud-api.md`` §11).

Used by the tests (the real Acronis cloud cannot run here) and by benchmarks. It speaks
real HTTP on ``127.0.0.1`` with an ephemeral port, from a background thread::

    with FakeAcronis("client-id", "client-secret") as fake:
        client = AcronisClient(fake.base_url, "client-id", "client-secret", cache=..., ...)
        fake.inject("/api/agent_manager/v2/agents", 429, retry_after=1)
        client.list_agents()
        assert fake.calls["/api/2/idp/token"] == 1

What it models, beyond the happy path:

* Tokens it issued are checked on every call; unknown or expired ones get a 401
  (``token_lifetime`` controls expiry, ``expire_tokens()`` ends them all now).
* Cursor pagination with opaque cursors (base64 of JSON) that encode the original
  filters, so later pages need only ``after`` and ``limit`` (§9).
* Task Manager filters ``completedAt``/``startedAt`` (``gt``/``ge``/``lt``/``le``/
  ``range``/``xrange``, repeatable), ``state``, ``resultCode``, ``policyType``,
  ``resourceId`` (case-insensitive), ``type``, ``order`` (§0, §6).
* Seed data with the awkward parts of the real API: RFC1123 ``registration_date``,
  64-bit activity ids with ``idString`` twins, GUIDs in mixed case between activities
  and workloads, one agent managing several workloads, a workload without an agent,
  child (non-root) activities and non-backup activities.
* Error injection (``inject``) for any status, with ``Retry-After``, a delay (to provoke
  client timeouts), and either error body shape (§10).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import hmac
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

__all__ = ["FakeAcronis", "Injection", "RecordedRequest"]

TOKEN_PATH = "/api/2/idp/token"
BACKUP_COMMAND_TYPE = "8F01AC13-F59E-4851-9204-DE1FD77E36B4"
FIRST_ACTIVITY_ID = 1639510477987147776  # beyond 2**53: loses precision as a JSON double
ACTIVITY_ID_STEP = 4099
_NAMESPACE = uuid.UUID("6f1c1c1e-3f0b-4e7a-9a57-2a8f5c0d8e11")


def _guid(name: str) -> str:
    """A stable lower-case GUID for seed object ``name``."""
    return str(uuid.uuid5(_NAMESPACE, name))


def _rfc3339(value: datetime) -> str:
    """``2025-10-24T02:14:31.900Z``, the Task Manager style."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _rfc1123(value: datetime) -> str:
    """``Wed, 29 Apr 2020 15:18:40 +0000``, the agent ``registration_date`` style."""
    return email.utils.format_datetime(value.astimezone(UTC))


_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(value: str) -> float:
    """Unix time from RFC3339, RFC1123, a Unix timestamp or ``<ns>ns`` (§0)."""
    text = value.strip()
    if text.endswith("ns") and text[:-2].isdigit():
        return int(text[:-2]) / 1e9
    try:
        return float(text)
    except ValueError:
        pass
    try:
        iso = _FRACTION.sub(
            lambda m: m.group(1), text.replace("Z", "+00:00").replace("z", "+00:00")
        )
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        try:
            parsed = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            raise ValueError(f"unparseable date {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


_CALL = re.compile(r"^\s*(\w+)\((.*)\)\s*$", re.DOTALL)


def _split_call(expr: str) -> tuple[str | None, list[str]]:
    """``gt(X)`` → ``("gt", ["X"])``; ``a`` → ``(None, ["a"])``."""
    match = _CALL.match(expr)
    if not match:
        return None, [expr]
    return match.group(1).lower(), [part.strip() for part in match.group(2).split(",")]


def _matches_values(actual: Any, exprs: list[str], *, casefold: bool = False) -> bool:
    """Equality filter: repeated values and ``or(...)`` are alternatives; ``not(...)`` excludes."""
    if actual is None:
        return False
    norm = (lambda s: str(s).lower()) if casefold else str
    value = norm(actual)
    wanted: set[str] = set()
    for expr in exprs:
        op, args = _split_call(expr)
        if op == "not":
            if value in {norm(a) for a in args}:
                return False
        elif op == "or" or op is None:
            wanted.update(norm(a) for a in args)
        else:
            raise ValueError(f"unsupported operator {op!r}")
    return not wanted or value in wanted


def _matches_time(actual: str | None, exprs: list[str]) -> bool:
    """Comparison filter: every repeated expression must hold (``gt(A)&lt(B)``)."""
    if not actual:
        return False
    when = parse_time(actual)
    for expr in exprs:
        op, args = _split_call(expr)
        bounds = [parse_time(a) for a in args]
        if op == "gt":
            ok = when > bounds[0]
        elif op == "ge":
            ok = when >= bounds[0]
        elif op == "lt":
            ok = when < bounds[0]
        elif op == "le":
            ok = when <= bounds[0]
        elif op == "range":
            ok = bounds[0] <= when <= bounds[1]
        elif op == "xrange":
            ok = bounds[0] < when < bounds[1]
        elif op is None:
            ok = when == bounds[0]
        else:
            raise ValueError(f"unsupported operator {op!r}")
        if not ok:
            return False
    return True


def _dig(item: dict, dotted: str) -> Any:
    value: Any = item
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _sort_key(item: dict, field: str) -> float:
    return int(item["idString"]) if field == "id" else parse_time(item[field])


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


class _ApiError(Exception):
    def __init__(
        self, status: int, code: int | str, message: str, *, domain: str, shape: str = "wrapped"
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.domain, self.shape = (
            status,
            code,
            message,
            domain,
            shape,
        )


def _domain_for(path: str) -> str:
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


def _shape_for(path: str) -> str:
    # §10: task manager and alert errors were seen with code/domain at the top level.
    return "flat" if path.startswith(("/api/task_manager", "/api/alert_manager")) else "wrapped"


_DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
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


class FakeAcronis:
    """The fake server. Use as a context manager, or call ``start()``/``stop()``.

    Public state (read it in tests; mutate through the methods while it is running):
    ``calls`` (``Counter`` of request paths, counted on arrival), ``requests``
    (``RecordedRequest`` list, appended when answered),
    ``tokens`` (issued token → expiry), ``agents``, ``workloads``, ``resources``,
    ``resource_statuses``, ``policy_statuses``, ``activities`` (raw upstream dicts),
    ``token_lifetime`` (seconds for tokens issued from now on), ``default_limit``.
    """

    def __init__(
        self,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",  # noqa: S107 - a fake's credential
        *,
        activity_count: int = 240,
        default_limit: int = 50,
        max_limit: int = 1000,
        host: str = "127.0.0.1",
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_lifetime: float = 7200
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.host = host
        self.calls: Counter[str] = Counter()
        self.requests: list[RecordedRequest] = []
        self.tokens: dict[str, float] = {}
        self.stuck_cursor_prefixes: set[str] = set()
        self._injections: list[Injection] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._next_id = FIRST_ACTIVITY_ID
        self.now = datetime.now(UTC).replace(microsecond=0)
        self._seed(activity_count)

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeAcronis is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeAcronis:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._server = _Server((self.host, 0), handler)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-acronis",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes injected delays
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeAcronis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- test controls --------------------------------------------------------------------

    def inject(
        self,
        path_prefix: str,
        status: int | None,
        times: int | None = 1,
        retry_after: float | str | None = None,
        delay: float | None = None,
        shape: str | None = None,
        *,
        code: int | str | None = None,
        message: str | None = None,
    ) -> Injection:
        """Arm a fault for the next ``times`` requests (``None``: forever) under ``path_prefix``.

        ``status`` ``None`` (or 200) with ``delay`` answers normally after the delay:
        longer than the client's timeout, that is a timeout. ``retry_after`` is sent as
        ``Retry-After`` (a number as seconds, a string verbatim, e.g. an HTTP date).
        ``shape`` is ``"wrapped"`` (``{"error": {...}}``) or ``"flat"``; by default the
        shape the real service uses. Faults are checked before authentication.
        """
        if shape not in (None, "wrapped", "flat"):
            raise ValueError("shape must be 'wrapped' or 'flat'")
        if retry_after is not None and not isinstance(retry_after, str):
            retry_after = f"{retry_after:g}"
        injection = Injection(
            path_prefix=path_prefix,
            status=None if status == 200 else status,
            times=times,
            retry_after=retry_after,
            delay=delay,
            shape=shape or _shape_for(path_prefix),
            code=code,
            message=message,
        )
        with self._lock:
            self._injections.append(injection)
        return injection

    def clear_injections(self) -> None:
        with self._lock:
            self._injections.clear()

    def expire_tokens(self) -> None:
        """Make every issued token expired now (the next call with one gets a 401)."""
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def reset_counters(self) -> None:
        with self._lock:
            self.calls.clear()
            self.requests.clear()

    def count(self, path_prefix: str = "", *, status: int | None = None) -> int:
        """Requests whose path starts with ``path_prefix`` (and answered ``status``)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.path.startswith(path_prefix) and (status is None or r.status == status)
            )

    def stick_cursor(self, path_prefix: str) -> None:
        """Make lists under ``path_prefix`` return the same ``after`` cursor forever (a bug)."""
        with self._lock:
            self.stuck_cursor_prefixes.add(path_prefix)

    def add_activity(
        self,
        *,
        resource_id: str | None = None,
        state: str = "completed",
        result_code: str | None = "ok",
        started_at: datetime | None = None,
        completed_at: datetime | None = None,
        policy_type: str = "policy.backup.machine",
        bytes_saved: int = 1 << 30,
        parent_id_string: str | None = None,
        **fields: Any,
    ) -> dict:
        """Append an activity (newest) and return a copy of it.

        ``resource_id`` defaults to the first workload; the executor is that workload's
        agent. Extra ``fields`` override top-level keys of the built activity.
        """
        with self._lock:
            workload = self.workloads[0]
            if resource_id is not None:
                workload = next(
                    (w for w in self.workloads if w["id"].lower() == resource_id.lower()),
                    {**workload, "id": resource_id},
                )
            started = started_at or datetime.now(UTC)
            activity = self._build_activity(
                workload,
                started=started,
                duration=timedelta(minutes=5),
                state=state,
                result_code=result_code,
                policy_type=policy_type,
                bytes_saved=bytes_saved,
                resource_id_text=resource_id or workload["id"],
                parent_id_string=parent_id_string,
            )
            if completed_at is not None and state == "completed":
                activity["completedAt"] = activity["updatedAt"] = _rfc3339(completed_at)
            activity.update(fields)
            self.activities.append(activity)
            return json.loads(json.dumps(activity))

    def set_activity_state(
        self,
        id_string: str,
        state: str,
        *,
        result_code: str | None = None,
        completed_at: datetime | None = None,
        bytes_saved: int | None = None,
    ) -> dict:
        """Move an activity to ``state``; completing sets ``completedAt`` and ``result``."""
        with self._lock:
            for activity in self.activities:
                if activity["idString"] == str(id_string):
                    break
            else:
                raise KeyError(id_string)
            when = completed_at or datetime.now(UTC)
            activity["state"] = state
            activity["updatedAt"] = _rfc3339(when)
            if state == "completed":
                activity["completedAt"] = _rfc3339(when)
                activity["progress"] = {"current": 100, "total": 100}
                activity["result"] = self._result(result_code or "ok")
            elif result_code is not None:
                activity["result"] = self._result(result_code)
            if bytes_saved is not None:
                activity["context"]["_runtime"]["bytesSaved"] = bytes_saved
            return json.loads(json.dumps(activity))

    # -- seed data ------------------------------------------------------------------------

    def _seed(self, activity_count: int) -> None:
        self.tenants = [
            {
                "id": "1496265",
                "uuid": _guid("tenant-acme"),
                "name": "Acme Corp",
                "locator": "/1/66/1496265/",
            },
            {
                "id": "1496266",
                "uuid": _guid("tenant-globex"),
                "name": "Globex",
                "locator": "/1/66/1496266/",
            },
        ]
        self.root_tenant_uuid = _guid("tenant-partner")
        acme, globex = self.tenants
        agent_specs = [
            ("DESKTOP-JRPTA4A", acme, True, "WINDOWS", "windows"),
            ("HV-HOST-01", acme, True, "WINDOWS", "windows server"),
            ("srv-linux-01", globex, False, "LINUX", "linux"),
            ("MBP-ANNA", globex, True, "MACOS", "macos"),
        ]
        self.agents = []
        for index, (hostname, tenant, online, family, os_name) in enumerate(agent_specs):
            registered = self.now - timedelta(days=400 - 37 * index, hours=index)
            self.agents.append(
                {
                    "id": _guid(f"agent-{hostname}"),
                    "host_id": _guid(f"host-{hostname}"),
                    "hostname": hostname,
                    "name": "",
                    "online": online,
                    "enabled": True,
                    "auto_update": index % 2 == 0,
                    "core_version": {"current": {"build": "179", "release_id": "1.2.8"}},
                    "installer_version": {"current": {"release_id": "24.3.37932"}},
                    "platform": {
                        "family": family,
                        "arch": "X64",
                        "name": os_name,
                        "caps": 0,
                        "product_type": 0,
                        "service_pack": 0,
                        "sku": 0,
                        "suite_mask": 0,
                        "version_major": 10,
                        "version_minor": 0,
                    },
                    "registration_date": _rfc1123(registered),
                    "tenant": {"id": tenant["id"], "name": tenant["name"]},
                    "units": [
                        {
                            "name": "mms",
                            "version": {"current": {"build": "1", "release_id": "0.0.0"}},
                        }
                    ],
                }
            )
        agent_by_host = {a["hostname"]: a for a in self.agents}
        # (name, agent hostname or None, v4 type, tenant, protection status)
        workload_specs = [
            ("DESKTOP-JRPTA4A", "DESKTOP-JRPTA4A", "resource.machine", acme, "ok"),
            ("HV-HOST-01", "HV-HOST-01", "resource.machine", acme, "ok"),
            ("VM-SQL-01", "HV-HOST-01", "resource.virtual_machine.mshyperv", acme, "warning"),
            ("VM-WEB-01", "HV-HOST-01", "resource.virtual_machine.mshyperv", acme, "error"),
            ("srv-linux-01", "srv-linux-01", "resource.machine", globex, "idle"),
            ("MBP-ANNA", "MBP-ANNA", "resource.machine", globex, "ok"),
            ("anna@globex.example", None, "resource.mailbox", globex, "not_protected"),
        ]
        self.workloads, self.resources, self.resource_statuses, self.policy_statuses = (
            [],
            [],
            [],
            [],
        )
        for index, (name, agent_host, rtype, tenant, status) in enumerate(workload_specs):
            wid = _guid(f"workload-{name}")
            created = _rfc3339(self.now - timedelta(days=300 - index))
            agent = agent_by_host.get(agent_host) if agent_host else None
            workload = {
                "id": wid,
                "external_id": f"{wid}@{tenant['id']}",
                "type": "cti.a.p.wm.workload.v1.0~a.p.wm.aspect.v1.0~a.p.machine.v1.0",
                "type_alias": rtype,
                "name": name,
                "user_defined_name": name,
                "tenant_id": tenant["id"],
                "attributes": {"host_name": name},
                "enabled": True,
                "is_auto_created": False,
                "aggregation_status": "NOT_AGGREGATED",
                "created_at": created,
                "updated_at": created,
            }
            if agent is not None:
                workload["agent_id"] = agent["id"]
            self.workloads.append(workload)
            self.resources.append(
                {
                    "id": wid,
                    "external_id": f"{wid}@{tenant['id']}",
                    "name": name,
                    "user_defined_name": name,
                    "tenant_id": tenant["id"],
                    "type": rtype,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            context = {
                "id": wid,
                "name": name,
                "type": rtype,
                "tenant_id": tenant["id"],
                "external_id": f"{wid}@{tenant['id']}",
                "user_defined_name": name,
            }
            if status == "not_protected":
                self.resource_statuses.append({"aggregate": {"status": status}, "context": context})
                continue
            last_run = _rfc3339(self.now - timedelta(hours=2 + index))
            next_run = _rfc3339(self.now + timedelta(hours=22 - index))
            self.resource_statuses.append(
                {
                    "aggregate": {"status": status, "names": "Daily backup;Weekly full"},
                    "context": context,
                    "policies": [
                        {
                            "type": "policy.backup.machine",
                            "last_run": last_run,
                            "last_success_run": last_run,
                            "next_run": next_run,
                        }
                    ],
                }
            )
            self.policy_statuses.append(
                {
                    "context": {
                        **context,
                        "agent_id": agent["id"] if agent else None,
                        "agent_name": agent["hostname"] if agent else None,
                    },
                    "policies": [
                        {
                            "type": "policy.backup.machine",
                            "status": status,
                            "names": "Daily backup",
                            "next_run_time": next_run,
                            "running": {"state": "idle"},
                        }
                    ],
                }
            )
        self.activities = []
        protected = [w for w in self.workloads if "agent_id" in w]
        # Oldest first, so ids grow with time; one run every 3 hours, over ~30 days.
        for n in range(activity_count):
            workload = protected[n % len(protected)]
            started = self.now - timedelta(hours=3 * (activity_count - n), minutes=n % 7)
            running = n >= activity_count - 2  # the two newest are still running
            result_code = "error" if n % 11 == 5 else "warning" if n % 13 == 7 else "ok"
            policy_type = "policy.security.antimalware" if n % 17 == 3 else "policy.backup.machine"
            # §0: the same GUID appears upper-case in some activities.
            upper = (n // len(protected)) % 3 == 0
            resource_text = workload["id"].upper() if upper else workload["id"]
            root = self._build_activity(
                workload,
                started=started,
                duration=timedelta(minutes=10 + n % 40),
                state="started" if running else "completed",
                result_code=None if running else result_code,
                policy_type=policy_type,
                bytes_saved=(n % 50 + 1) * 10_000_000,
                resource_id_text=resource_text,
            )
            self.activities.append(root)
            if n % 10 == 0 and not running:
                self.activities.append(
                    self._build_activity(
                        workload,
                        started=started + timedelta(minutes=1),
                        duration=timedelta(minutes=5),
                        state="completed",
                        result_code=result_code,
                        policy_type=policy_type,
                        bytes_saved=0,
                        resource_id_text=resource_text,
                        parent_id_string=root["idString"],
                    )
                )

    def _result(self, code: str) -> dict:
        result: dict[str, Any] = {"code": code}
        if code in ("error", "abandoned", "timedout"):
            result["error"] = {
                "domain": "Backup",
                "code": "20250646",
                "reason": "You do not have access rights to this file",
                "context": {"cause_str": "Access denied", "effect_str": "Backup failed"},
                "kbLink": {"serCode": "0x01350016+0x000B0005"},
            }
        elif code == "warning":
            result["warnings"] = [{"reason": "Some files were skipped"}]
        return result

    def _build_activity(
        self,
        workload: dict,
        *,
        started: datetime,
        duration: timedelta,
        state: str,
        result_code: str | None,
        policy_type: str,
        bytes_saved: int,
        resource_id_text: str,
        parent_id_string: str | None = None,
    ) -> dict:
        activity_id = self._next_id
        self._next_id += ACTIVITY_ID_STEP
        tenant = next(t for t in self.tenants if t["id"] == workload["tenant_id"])
        agent_id = workload.get("agent_id") or _guid("agent-cloud")
        completed = started + duration
        activity: dict[str, Any] = {
            "id": activity_id,
            "idString": str(activity_id),
            "uuid": _guid(f"activity-{activity_id}"),
            "taskId": activity_id,
            "taskIdString": str(activity_id),
            "type": BACKUP_COMMAND_TYPE,
            "state": state,
            "createdAt": _rfc3339(started),
            "startedAt": _rfc3339(started),
            "updatedAt": _rfc3339(completed if state == "completed" else started),
            "resource": {"id": resource_id_text, "type": "machine", "name": workload["name"]},
            "policy": {
                "id": _guid(f"policy-{tenant['id']}"),
                "type": policy_type,
                "name": "Daily backup",
            },
            "tenant": dict(tenant),
            "executor": {"id": agent_id, "clusterId": ""},
            "progress": {"current": 100 if state == "completed" else 40, "total": 100},
            "startedByUser": "scheduler",
            "context": {
                "IsProcessRoot": parent_id_string is None,
                "title": f"Backing up '{workload['name']}'",
                "runMode": "scheduled",
                "MachineName": workload["name"],
                "BackupPlanID": _guid(f"policy-{tenant['id']}"),
                "BackupPlanName": "Daily backup",
                "ArchiveName": f"{workload['name']}-A0210313",
                "ArchiveLocation": "cloud",
                "_runtime": {"bytesProcessed": bytes_saved * 5, "bytesSaved": bytes_saved},
            },
        }
        if state == "completed":
            activity["completedAt"] = _rfc3339(completed)
            activity["result"] = self._result(result_code or "ok")
        if parent_id_string is not None:
            activity["parentActivityId"] = int(parent_id_string)
            activity["parentActivityIdString"] = parent_id_string
        return activity

    # -- request handling (called from server threads) ------------------------------------

    def _take_injection(self, path: str) -> Injection | None:
        with self._lock:
            for injection in self._injections:
                if path.startswith(injection.path_prefix) and (
                    injection.times is None or injection.times > 0
                ):
                    if injection.times is not None:
                        injection.times -= 1
                    return injection
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _check_bearer(self, header: str, path: str) -> None:
        scheme, _, token = header.partition(" ")
        with self._lock:
            expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None:
            raise _ApiError(
                401, "Unauthorized", "Access token is invalid.", domain=_domain_for(path)
            )
        if expires <= time.time():
            raise _ApiError(
                401, "AuthenticationTimeout", "Access token has expired.", domain=_domain_for(path)
            )

    def _issue_token(self, header: str, body: bytes) -> dict:
        domain = "PlatformAccountServer"
        form = parse_qs(body.decode("utf-8", "replace"))
        scheme, _, encoded = header.partition(" ")
        try:
            decoded = base64.b64decode(encoded, validate=True).decode() if encoded else ""
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        client_id, _, client_secret = decoded.partition(":")
        valid = (
            scheme.lower() == "basic"
            and hmac.compare_digest(client_id.encode(), self.client_id.encode())
            and hmac.compare_digest(client_secret.encode(), self.client_secret.encode())
        )
        if not valid:
            raise _ApiError(401, 1002, "Invalid client credentials.", domain=domain)
        if form.get("grant_type") != ["client_credentials"]:
            raise _ApiError(400, "invalid_grant", "Unsupported grant_type.", domain=domain)
        token = "fake-at-" + secrets.token_urlsafe(24)
        expires = time.time() + float(self.token_lifetime)
        with self._lock:
            self.tokens[token] = expires
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_on": int(expires),
            "id_token": "fake-id-" + secrets.token_urlsafe(16),
        }

    def _paginate(
        self,
        path: str,
        query: dict[str, list[str]],
        source: Iterable[dict],
        select: Callable[[list[dict], dict[str, list[str]]], list[dict]],
        *,
        with_total: bool,
    ) -> dict:
        """One page; the ``after`` cursor encodes path, filters and offset (§9)."""
        cursor_text = (query.get("after") or [None])[0]
        if cursor_text:
            try:
                cursor = json.loads(base64.urlsafe_b64decode(cursor_text.encode()))
                filters, offset = cursor["q"], int(cursor["o"])
                if cursor["p"] != path:
                    raise ValueError("cursor of another list")
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise _ApiError(
                    400,
                    "InvalidCursor",
                    "Invalid paging cursor.",
                    domain=_domain_for(path),
                    shape=_shape_for(path),
                ) from None
        else:
            filters = {k: v for k, v in query.items() if k not in ("after", "before", "limit")}
            offset = 0
        try:
            limit = int((query.get("limit") or [self.default_limit])[0])
        except ValueError:
            limit = self.default_limit
        limit = max(1, min(limit, self.max_limit))
        with self._lock:
            # Filter by reference and copy only the page: lists can be large in benchmarks.
            try:
                selected = select(list(source), filters)
            except ValueError as exc:
                raise _ApiError(
                    400,
                    "ValidationError",
                    str(exc),
                    domain=_domain_for(path),
                    shape=_shape_for(path),
                ) from None
            page = json.loads(json.dumps(selected[offset : offset + limit]))
        cursors: dict[str, Any] = {}
        if offset + limit < len(selected):
            if cursor_text and any(path.startswith(p) for p in self.stuck_cursor_prefixes):
                cursors["after"] = cursor_text
            else:
                payload = {"p": path, "q": filters, "o": offset + limit}
                cursors["after"] = base64.urlsafe_b64encode(
                    json.dumps(payload, sort_keys=True).encode()
                ).decode()
        if offset > 0:
            payload = {"p": path, "q": filters, "o": max(0, offset - limit)}
            cursors["before"] = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
        if with_total:
            cursors["total"] = len(selected)
        return {"items": page, "paging": {"cursors": cursors}}

    # -- endpoint selectors ---------------------------------------------------------------

    @staticmethod
    def _select_agents(items: list[dict], q: dict[str, list[str]]) -> list[dict]:
        if "tenant_id" in q:
            items = [a for a in items if _matches_values(a["tenant"]["id"], q["tenant_id"])]
        for expr in q.get("hostname", []):
            op, args = _split_call(expr)
            pattern = args[0].lower().replace("%", "")
            if op == "hlike":
                items = [a for a in items if pattern in a["hostname"].lower()]
            else:
                items = [a for a in items if a["hostname"].lower() == pattern]
        return items

    @staticmethod
    def _select_workloads(items: list[dict], q: dict[str, list[str]]) -> list[dict]:
        for key, field in (("tenant_id", "tenant_id"), ("workload_id", "id"), ("type", "type")):
            if key in q:
                items = [w for w in items if _matches_values(w.get(field), q[key], casefold=True)]
        return items

    @staticmethod
    def _select_by_type(field: str) -> Callable[[list[dict], dict[str, list[str]]], list[dict]]:
        def select(items: list[dict], q: dict[str, list[str]]) -> list[dict]:
            if "type" in q:
                items = [i for i in items if _matches_values(_dig(i, field), q["type"])]
            if "tenant_id" in q:
                items = [
                    i
                    for i in items
                    if _matches_values(_dig(i, "context.tenant_id"), q["tenant_id"])
                ]
            return items

        return select

    @staticmethod
    def _select_activities(items: list[dict], q: dict[str, list[str]]) -> list[dict]:
        for key in ("completedAt", "startedAt", "createdAt", "updatedAt"):
            if key in q:
                items = [a for a in items if _matches_time(a.get(key), q[key])]
        simple = {
            "state": ("state", False),
            "resultCode": ("result.code", False),
            "resourceId": ("resource.id", True),
            "type": ("type", True),
            "id": ("idString", False),
            "taskId": ("taskIdString", False),
            "policyId": ("policy.id", True),
        }
        for key, (field, casefold) in simple.items():
            if key in q:
                items = [
                    a for a in items if _matches_values(_dig(a, field), q[key], casefold=casefold)
                ]
        for policy_type in q.get("policyType", []):
            wanted = policy_type if policy_type.startswith("policy.") else f"policy.{policy_type}"
            items = [
                a
                for a in items
                if a["policy"]["type"] == wanted or a["policy"]["type"].startswith(wanted + ".")
            ]
        for expr in q.get("order", [])[:1]:
            op, args = _split_call(expr)
            if op not in ("asc", "desc"):
                raise ValueError(f"bad order {expr!r}")
            field = args[0]
            present = [a for a in items if a.get(field) is not None]
            missing = [a for a in items if a.get(field) is None]
            items = (
                sorted(present, key=lambda a, f=field: _sort_key(a, f), reverse=op == "desc")
                + missing
            )
        return items

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict, dict]:
        """Route one request; returns ``(status, headers, json_body)``."""
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        auth = headers.get("authorization", "")
        status, out_headers, payload = 500, {}, {}
        with self._lock:
            # Counted on arrival, so a request still sleeping in an injected delay counts.
            self.calls[path] += 1
        try:
            injection = self._take_injection(path)
            if injection is not None:
                if injection.delay:
                    self._stopping.wait(injection.delay)
                if injection.status is not None:
                    code, message = _DEFAULT_ERRORS.get(
                        injection.status, ("Error", "Injected error.")
                    )
                    if injection.status == 503 and injection.retry_after is not None:
                        code, message = _DEFAULT_ERRORS[429]
                    if injection.retry_after is not None:
                        out_headers["Retry-After"] = injection.retry_after
                    raise _ApiError(
                        injection.status,
                        injection.code if injection.code is not None else code,
                        injection.message or message,
                        domain=_domain_for(path),
                        shape=injection.shape,
                    )
            status, payload = self._route(method, path, query, auth, body)
        except _ApiError as exc:
            status = exc.status
            error = {"domain": exc.domain, "code": exc.code, "message": exc.message}
            payload = {"error": error} if exc.shape == "wrapped" else error
        kind = auth.partition(" ")[0].lower()
        self._record(
            RecordedRequest(
                method=method,
                path=path,
                query=query,
                status=status,
                authorization=kind if kind in ("bearer", "basic") else "",
            )
        )
        return status, out_headers, payload

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], auth: str, body: bytes
    ) -> tuple[int, dict]:
        if path == TOKEN_PATH:
            if method != "POST":
                raise _ApiError(405, "MethodNotAllowed", "Use POST.", domain=_domain_for(path))
            return 200, self._issue_token(auth, body)
        if method != "GET":
            raise _ApiError(
                405,
                "MethodNotAllowed",
                "Method not allowed.",
                domain=_domain_for(path),
                shape=_shape_for(path),
            )
        if path == "/api/2/versions":
            return 200, {
                "application": {"name": "Fake Acronis", "version": "24.3", "edition": "cloud"},
                "components": [],
            }
        self._check_bearer(auth, path)
        parts = path.strip("/").split("/")
        if path.startswith("/api/2/clients/") and len(parts) == 4:
            if parts[3] != self.client_id:
                raise _ApiError(404, 1002, "API client not found.", domain="PlatformAccountServer")
            return 200, {
                "type": "api_client",
                "tenant_id": self.root_tenant_uuid,
                "data": {"client_name": "Fake API client"},
                "created_by": _guid("user-admin"),
                "last_access_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        collections: dict[str, tuple[list[dict], Callable[..., list[dict]], bool]] = {
            "/api/agent_manager/v2/agents": (self.agents, self._select_agents, False),
            "/api/workload_management/v5/workloads": (self.workloads, self._select_workloads, True),
            "/api/resource_management/v4/resources": (
                self.resources,
                self._select_by_type("type"),
                True,
            ),
            "/api/resource_management/v4/resource_statuses": (
                self.resource_statuses,
                self._select_by_type("context.type"),
                True,
            ),
            "/api/policy_management/v4/policy_statuses": (
                self.policy_statuses,
                self._select_by_type("context.type"),
                True,
            ),
            "/api/task_manager/v2/activities": (self.activities, self._select_activities, False),
            "/api/task_manager/v2/tasks": (
                [a for a in self.activities if "parentActivityIdString" not in a],
                self._select_activities,
                False,
            ),
        }
        if path in collections:
            source, select, with_total = collections[path]
            page = self._paginate(path, query, source, select, with_total=with_total)
            if path.startswith("/api/task_manager"):
                page["size"] = len(page["items"])
                page["timeStamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return 200, page
        parent, _, item_id = path.rpartition("/")
        if parent in collections and parent != "/api/resource_management/v4/resource_statuses":
            source = collections[parent][0]
            key = "idString" if parent.startswith("/api/task_manager") else "id"
            with self._lock:
                for item in source:
                    if str(item.get(key, "")).lower() == item_id.lower():
                        return 200, json.loads(json.dumps(item))
            raise _ApiError(
                404,
                "NotFound",
                f"Object {item_id} not found.",
                domain=_domain_for(path),
                shape=_shape_for(path),
            )
        raise _ApiError(
            404, "NotFound", "No such endpoint.", domain=_domain_for(path), shape=_shape_for(path)
        )


class _Server(ThreadingHTTPServer):
    """One thread per connection, daemonic so a hung client cannot block ``stop()``."""

    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs when 20 clients connect at once;
    # the kernel then retransmits after 1 s, which looks like a slow or hung upstream.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler delegating to :meth:`FakeAcronis.handle`."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY, Nagle plus delayed ACKs
    # add ~40 ms to every response, which would dominate tests and benchmarks.
    disable_nagle_algorithm = True
    fake: FakeAcronis  # set on the bound subclass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, out_headers, payload = self.fake.handle(self.command, self.path, headers, body)
        data = json.dumps(payload).encode()
        try:
            self.send_response(
                status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
            )
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in out_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (e.g. it timed out during an injected delay).
            self.close_connection = True

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake acronis: " + format, *args)

    def handle(self) -> None:
        # A client that timed out and hung up is normal here, not an error to print.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            super().handle()
