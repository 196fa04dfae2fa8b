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
* Customer-scoped tokens (§1): the jwt-bearer grant with the client's own token as
  the assertion and ``scope=urn:acronis.com:tenant-id:<customer uuid>``; a scoped
  token sees only that customer's agents, workloads, statuses and activities.
* Cursor pagination with opaque cursors (base64 of JSON) that encode the original
  filters, so later pages need only ``after`` and ``limit`` (§9).
* Task Manager filters ``completedAt``/``startedAt`` (``gt``/``ge``/``lt``/``le``/
  ``range``/``xrange``, repeatable), ``state``, ``resultCode``, ``policyType``,
  ``resourceId`` (case-insensitive), ``type``, ``order`` (§0, §6); policy statuses
  require the documented ``tenant_id`` UUID (§4d).
* Seed data with the awkward parts of the real API (``seed.py``).
* Error injection (``inject``) for any status, with ``Retry-After``, a delay (to provoke
  client timeouts), and either error body shape (§10).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.acronis_fake.protocol import (
    DEFAULT_ERRORS,
    ApiError,
    Injection,
    RecordedRequest,
    domain_for,
    shape_for,
)
from tests.support.acronis_fake.query import (
    Query,
    Selector,
    dig,
    select_activities,
    select_agents,
    select_by_type,
    select_policy_statuses,
    select_workloads,
)
from tests.support.acronis_fake.seed import FIRST_ACTIVITY_ID, SeedData, guid
from tests.support.acronis_fake.tokens import TOKEN_PATH, TokenEndpoint

logger = logging.getLogger(__name__)

__all__ = ["FakeAcronis"]


class FakeAcronis(SeedData, TokenEndpoint):
    """The fake server. Use as a context manager, or call ``start()``/``stop()``.

    Public state (read it in tests; mutate through the methods while it is running):
    ``calls`` (``Counter`` of request paths, counted on arrival), ``requests``
    (``RecordedRequest`` list, appended when answered),
    ``tokens`` (issued token → expiry), ``token_scopes`` (scoped token → customer
    UUID), ``agents``, ``workloads``, ``resources``,
    ``resource_statuses``, ``policy_statuses``, ``activities`` (raw upstream dicts),
    ``token_lifetime`` (seconds for tokens issued from now on), ``default_limit``.
    """

    def __init__(
        self,
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
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
        self.token_scopes: dict[str, str] = {}
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
            shape=shape or shape_for(path_prefix),
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
                1 for r in self.requests if r.path.startswith(path_prefix) and (status is None or r.status == status)
            )

    def stick_cursor(self, path_prefix: str) -> None:
        """Make lists under ``path_prefix`` return the same ``after`` cursor forever (a bug)."""
        with self._lock:
            self.stuck_cursor_prefixes.add(path_prefix)

    # -- request handling (called from server threads) ------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, dict]:
        """Route one request; returns ``(status, headers, json_body)``."""
        split = urlsplit(raw_path)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        auth = headers.get("authorization", "")
        form = parse_qs(body.decode("utf-8", "replace")) if path == TOKEN_PATH else {}
        out_headers: dict[str, str] = {}
        with self._lock:
            # Counted on arrival, so a request still sleeping in an injected delay counts.
            self.calls[path] += 1
        try:
            self._apply_injection(path, out_headers)
            status, payload = self._route(method, path, query, auth, form)
        except ApiError as exc:
            status = exc.status
            error = {"domain": exc.domain, "code": exc.code, "message": exc.message}
            payload = {"error": error} if exc.shape == "wrapped" else error
        kind, _, credential = auth.partition(" ")
        kind = kind.lower()
        with self._lock:
            scope = self.token_scopes.get(credential) if kind == "bearer" else None
        self._record(
            RecordedRequest(
                method=method,
                path=path,
                query=query,
                status=status,
                authorization=kind if kind in ("bearer", "basic") else "",
                form={k: ["***"] if k == "assertion" else v for k, v in form.items()},
                token_scope=scope,
            )
        )
        return status, out_headers, payload

    def _apply_injection(self, path: str, out_headers: dict[str, str]) -> None:
        """Sleep and/or raise the armed fault for ``path``, if any (before authentication)."""
        injection = self._take_injection(path)
        if injection is None:
            return
        if injection.delay:
            self._stopping.wait(injection.delay)
        if injection.status is None:
            return
        code, message = DEFAULT_ERRORS.get(injection.status, ("Error", "Injected error."))
        if injection.status == 503 and injection.retry_after is not None:
            code, message = DEFAULT_ERRORS[429]
        if injection.retry_after is not None:
            out_headers["Retry-After"] = injection.retry_after
        raise ApiError(
            injection.status,
            injection.code if injection.code is not None else code,
            injection.message or message,
            domain=domain_for(path),
            shape=injection.shape,
        )

    def _take_injection(self, path: str) -> Injection | None:
        with self._lock:
            for injection in self._injections:
                if path.startswith(injection.path_prefix) and (injection.times is None or injection.times > 0):
                    if injection.times is not None:
                        injection.times -= 1
                    return injection
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _route(self, method: str, path: str, query: Query, auth: str, form: Query) -> tuple[int, dict]:
        if path == TOKEN_PATH:
            if method != "POST":
                raise ApiError(405, "MethodNotAllowed", "Use POST.", domain=domain_for(path))
            return 200, self._issue_token(auth, form)
        if method != "GET":
            raise ApiError(
                405,
                "MethodNotAllowed",
                "Method not allowed.",
                domain=domain_for(path),
                shape=shape_for(path),
            )
        if path == "/api/2/versions":
            return 200, {
                "application": {"name": "Fake Acronis", "version": "24.3", "edition": "cloud"},
                "components": [],
            }
        scope = self._check_bearer(auth, path)
        parts = path.strip("/").split("/")
        if path.startswith("/api/2/clients/") and len(parts) == 4:
            return 200, self._api_client(parts[3])
        collections = self._collections(scope)
        if path in collections:
            source, select, with_total = collections[path]
            page = self._paginate(path, query, source, select, with_total=with_total)
            if path.startswith("/api/task_manager"):
                page["size"] = len(page["items"])
                page["timeStamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return 200, page
        parent, _, item_id = path.rpartition("/")
        if parent in collections and parent != "/api/resource_management/v4/resource_statuses":
            return 200, self._one(parent, collections[parent][0], item_id)
        raise ApiError(404, "NotFound", "No such endpoint.", domain=domain_for(path), shape=shape_for(path))

    def _api_client(self, client_id: str) -> dict:
        if client_id != self.client_id:
            raise ApiError(404, 1002, "API client not found.", domain="PlatformAccountServer")
        return {
            "type": "api_client",
            "tenant_id": self.root_tenant_uuid,
            "data": {"client_name": "Fake API client"},
            "created_by": guid("user-admin"),
            "last_access_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }

    def _collections(self, scope: str | None) -> dict[str, tuple[list[dict], Selector, bool]]:
        """Every list, as a customer-scoped token sees it: that customer's objects only."""
        legacy = self.tenant_ids(scope) if scope else None

        def mine(items: list[dict], field: str) -> list[dict]:
            return items if legacy is None else [i for i in items if dig(i, field) in legacy]

        roots = [a for a in self.activities if "parentActivityIdString" not in a]
        return {
            "/api/agent_manager/v2/agents": (mine(self.agents, "tenant.id"), select_agents, False),
            "/api/workload_management/v5/workloads": (
                mine(self.workloads, "tenant_id"),
                select_workloads,
                True,
            ),
            "/api/resource_management/v4/resources": (
                mine(self.resources, "tenant_id"),
                select_by_type("type"),
                True,
            ),
            "/api/resource_management/v4/resource_statuses": (
                mine(self.resource_statuses, "context.tenant_id"),
                select_by_type("context.type"),
                True,
            ),
            "/api/policy_management/v4/policy_statuses": (
                mine(self.policy_statuses, "context.tenant_id"),
                select_policy_statuses(self.tenant_ids),
                True,
            ),
            "/api/task_manager/v2/activities": (
                mine(self.activities, "tenant.id"),
                select_activities,
                False,
            ),
            "/api/task_manager/v2/tasks": (mine(roots, "tenant.id"), select_activities, False),
        }

    def _one(self, parent: str, source: list[dict], item_id: str) -> dict:
        key = "idString" if parent.startswith("/api/task_manager") else "id"
        with self._lock:
            for item in source:
                if str(item.get(key, "")).lower() == item_id.lower():
                    return json.loads(json.dumps(item))
        raise ApiError(
            404,
            "NotFound",
            f"Object {item_id} not found.",
            domain=domain_for(parent),
            shape=shape_for(parent),
        )

    def tenant_ids(self, tenant_uuid: str) -> set[str] | None:
        """Legacy ids a tenant UUID covers: all for the partner, its own for a customer."""
        if tenant_uuid == self.root_tenant_uuid:
            return {t["id"] for t in self.tenants}
        for tenant in self.tenants:
            if tenant["uuid"] == tenant_uuid:
                return {tenant["id"]}
        return None

    def _paginate(
        self,
        path: str,
        query: Query,
        source: Iterable[dict],
        select: Selector,
        *,
        with_total: bool,
    ) -> dict:
        """One page; the ``after`` cursor encodes path, filters and offset (§9)."""
        cursor_text = (query.get("after") or [None])[0]
        if cursor_text:
            filters, offset = _decode_cursor(path, cursor_text)
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
                raise ApiError(
                    400,
                    "ValidationError",
                    str(exc),
                    domain=domain_for(path),
                    shape=shape_for(path),
                ) from None
            page = json.loads(json.dumps(selected[offset : offset + limit]))
        cursors: dict[str, Any] = {}
        if offset + limit < len(selected):
            if cursor_text and any(path.startswith(p) for p in self.stuck_cursor_prefixes):
                cursors["after"] = cursor_text
            else:
                payload = {"p": path, "q": filters, "o": offset + limit}
                cursors["after"] = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
        if offset > 0:
            payload = {"p": path, "q": filters, "o": max(0, offset - limit)}
            cursors["before"] = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
        if with_total:
            cursors["total"] = len(selected)
        return {"items": page, "paging": {"cursors": cursors}}


def _decode_cursor(path: str, text: str) -> tuple[Query, int]:
    """The filters and offset an ``after`` cursor of ``path`` encodes (§9)."""
    try:
        cursor = json.loads(base64.urlsafe_b64decode(text.encode()))
        if cursor["p"] != path:
            raise ValueError("cursor of another list")
        return cursor["q"], int(cursor["o"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(
            400,
            "InvalidCursor",
            "Invalid paging cursor.",
            domain=domain_for(path),
            shape=shape_for(path),
        ) from None


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
            self.send_response(status, HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "")
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
