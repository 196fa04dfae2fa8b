"""AcronisClient over real HTTP against the loopback fake (spec §11); no mocked transports."""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import math
import multiprocessing
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acronis.client import AcronisClient, parse_error_body, parse_retry_after
from acronis.errors import (
    AcronisAgentNotFound,
    AcronisAuthFailed,
    AcronisClientError,
    AcronisConnectionError,
    AcronisCredentialsInvalid,
    AcronisError,
    AcronisInvalidAgentId,
    AcronisPermissionError,
    AcronisRateLimited,
    AcronisServerError,
    AcronisTimeoutError,
)
from tests.support.acronis_fake import FakeAcronis

CLIENT_ID = "3f2c1a9e-client"
SECRET = "Sup3r-S3cret-Value-7d1f0c9b2e"  # distinctive, so any leak is found by substring
TOKEN_PATH = "/api/2/idp/token"
AGENTS = "/api/agent_manager/v2/agents"
ACTIVITIES = "/api/task_manager/v2/activities"


class DictCache:
    """The Django cache API (get/set/add/delete with timeouts) over a dict, thread-safe."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[Any, float | None]] = {}
        self._lock = threading.Lock()

    def _live(self, key: str) -> tuple[Any, float | None] | None:
        entry = self._data.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= time.time():
            del self._data[key]
            return None
        return entry

    def get(self, key: str, default: Any = None) -> Any:
        with self._lock:
            entry = self._live(key)
            return default if entry is None else entry[0]

    def set(self, key: str, value: Any, timeout: float | None = 300) -> None:
        with self._lock:
            self._data[key] = (value, None if timeout is None else time.time() + timeout)

    def add(self, key: str, value: Any, timeout: float | None = 300) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._data[key] = (value, None if timeout is None else time.time() + timeout)
            return True

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        with self._lock:
            found = {key: self._live(key) for key in keys}
            return {key: entry[0] for key, entry in found.items() if entry is not None}

    def incr(self, key: str, delta: int = 1) -> int:
        with self._lock:
            entry = self._live(key)
            if entry is None:
                raise ValueError(f"Key {key!r} not found.")
            self._data[key] = (entry[0] + delta, entry[1])
            return entry[0] + delta

    def delete(self, key: str) -> bool:
        with self._lock:
            return self._data.pop(key, None) is not None


# Not db 0: the project's autouse fixture calls cache.clear() (FLUSHDB on the Django cache
# database) in every other test, which would wipe our token mid-test when suites run in
# parallel. Keys are namespaced per test and deleted afterwards.
REDIS_TEST_URL = "redis://127.0.0.1:6379/14"
_redis_prefixes: list[str] = []


def _redis_cache(prefix: str | None = None) -> Any:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=0.5).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    from django.core.cache.backends.redis import RedisCache

    prefix = prefix or f"acronis-test-{uuid.uuid4().hex}"
    _redis_prefixes.append(prefix)
    return RedisCache(REDIS_TEST_URL, {"KEY_PREFIX": prefix})


@pytest.fixture(autouse=True)
def _delete_redis_test_keys() -> Iterator[None]:
    yield
    if _redis_prefixes:
        import redis

        connection = redis.Redis.from_url(REDIS_TEST_URL)
        for prefix in _redis_prefixes:
            for key in connection.scan_iter(f"{prefix}:*"):
                connection.delete(key)
        _redis_prefixes.clear()


@pytest.fixture
def fake() -> Iterator[FakeAcronis]:
    with FakeAcronis(CLIENT_ID, SECRET) as server:
        yield server


@pytest.fixture
def cache() -> DictCache:
    return DictCache()


@pytest.fixture(params=["dict", "redis"])
def shared_cache(request: pytest.FixtureRequest) -> Any:
    """The tiny dict cache and Django's real Redis cache backend."""
    return DictCache() if request.param == "dict" else _redis_cache()


def make_client(fake: FakeAcronis, cache: Any, **kwargs: Any) -> AcronisClient:
    options: dict[str, Any] = {
        "cache": cache,
        "cache_key_prefix": "acronis-test",
        "timeout": 2.0,
        "deadline": 5.0,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
    }
    options.update(kwargs)
    base_url = options.pop("base_url", None) or fake.base_url
    secret = options.pop("client_secret", SECRET)
    return AcronisClient(base_url, CLIENT_ID, secret, **options)


@pytest.fixture
def client(fake: FakeAcronis, cache: DictCache) -> Iterator[AcronisClient]:
    with make_client(fake, cache) as c:
        yield c


def expected_backup_ids(fake: FakeAcronis) -> list[str]:
    return [a["idString"] for a in fake.activities if a["policy"]["type"].startswith("policy.backup")]


# --- tokens ------------------------------------------------------------------------------


def test_many_calls_reuse_one_token(fake: FakeAcronis, client: AcronisClient) -> None:
    for _ in range(10):
        client.get_token_info()
    client.list_agents()

    assert fake.calls[TOKEN_PATH] == 1
    api_calls = [r for r in fake.requests if r.path != TOKEN_PATH]
    assert len(api_calls) == 11
    assert {r.authorization for r in api_calls} == {"bearer"}
    assert fake.count(status=401) == 0


def test_clients_sharing_a_cache_share_the_token(fake: FakeAcronis, shared_cache: Any) -> None:
    # Two clients stand for two worker processes using the same Django cache.
    with make_client(fake, shared_cache) as first, make_client(fake, shared_cache) as second:
        first.list_agents()
        second.list_agents()
        second.get_token_info()

    assert fake.calls[TOKEN_PATH] == 1


def test_token_is_refreshed_before_it_expires(fake: FakeAcronis, client: AcronisClient) -> None:
    fake.token_lifetime = 3  # the client refreshes half-way through so short a lifetime
    client.get_token_info()
    time.sleep(1.6)
    client.get_token_info()

    assert fake.calls[TOKEN_PATH] == 2
    assert fake.count(status=401) == 0  # refreshed ahead of expiry, not after a rejection


def test_expired_token_is_replaced_once_and_the_call_succeeds(fake: FakeAcronis, client: AcronisClient) -> None:
    client.get_token_info()
    fake.expire_tokens()

    agents = client.list_agents()

    assert len(agents) == len(fake.agents)
    assert fake.calls[TOKEN_PATH] == 2
    assert fake.count(AGENTS, status=401) == 1


def test_injected_401_is_retried_once_with_a_new_token(fake: FakeAcronis, client: AcronisClient) -> None:
    fake.inject(AGENTS, 401)

    assert len(client.list_agents()) == len(fake.agents)
    assert fake.calls[TOKEN_PATH] == 2
    assert fake.calls[AGENTS] == 2


def test_second_401_raises_auth_failed(fake: FakeAcronis, client: AcronisClient) -> None:
    fake.inject(AGENTS, 401, times=2)

    with pytest.raises(AcronisAuthFailed) as info:
        client.list_agents()

    assert info.value.code == "ACRONIS_AUTH_FAILED"
    assert info.value.http_status == 502
    assert info.value.upstream_status == 401
    assert fake.calls[TOKEN_PATH] == 2
    assert fake.calls[AGENTS] == 2


def test_wrong_secret_raises_credentials_invalid_without_retrying(fake: FakeAcronis, cache: DictCache) -> None:
    with (
        make_client(fake, cache, client_secret="not-the-secret") as wrong,
        pytest.raises(AcronisCredentialsInvalid) as info,
    ):
        wrong.list_agents()

    assert info.value.code == "ACRONIS_CREDENTIALS_INVALID"
    assert "Invalid client credentials" in info.value.message
    assert fake.calls[TOKEN_PATH] == 1
    assert fake.calls[AGENTS] == 0


def test_changing_the_secret_does_not_reuse_the_old_token(fake: FakeAcronis, cache: DictCache) -> None:
    with make_client(fake, cache) as good:
        good.get_token_info()
    with (
        make_client(fake, cache, client_secret="rotated-but-wrong") as wrong,
        pytest.raises(AcronisCredentialsInvalid),
    ):
        wrong.get_token_info()


def test_concurrent_token_requests_make_one_upstream_call(fake: FakeAcronis, shared_cache: Any) -> None:
    # A slow token endpoint widens the race window: all 20 threads miss the cache.
    fake.inject(TOKEN_PATH, None, delay=0.3)
    clients = [make_client(fake, shared_cache) for _ in range(20)]
    barrier = threading.Barrier(len(clients))
    results: list[Any] = []

    def work(c: AcronisClient) -> None:
        barrier.wait()
        try:
            results.append(c.get_token_info()["tenant_id"])
        except Exception as exc:  # collected and asserted below
            results.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    for c in clients:
        c.close()

    assert results == [fake.root_tenant_uuid] * 20
    assert fake.calls[TOKEN_PATH] == 1, [(i, r.status) for i, r in enumerate(fake.requests) if r.path == TOKEN_PATH]


def _process_worker(base_url: str, prefix: str, queue: Any) -> None:
    from django.core.cache.backends.redis import RedisCache

    cache = RedisCache(REDIS_TEST_URL, {"KEY_PREFIX": prefix})
    results = []
    with AcronisClient(base_url, CLIENT_ID, SECRET, cache=cache, cache_key_prefix="acronis-test") as c:
        for _ in range(3):
            results.append(c.get_token_info()["type"])
    queue.put(results)


def test_worker_processes_sharing_redis_make_one_token_request(fake: FakeAcronis) -> None:
    prefix = f"acronis-test-{uuid.uuid4().hex}"
    _redis_cache(prefix)  # skips without Redis; registers the prefix for cleanup
    fake.inject(TOKEN_PATH, None, delay=0.3)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    processes = [ctx.Process(target=_process_worker, args=(fake.base_url, prefix, queue)) for _ in range(4)]
    for p in processes:
        p.start()
    outputs = [queue.get(timeout=15) for _ in processes]
    for p in processes:
        p.join(timeout=5)

    assert outputs == [["api_client"] * 3] * 4
    assert fake.calls[TOKEN_PATH] == 1, [(i, r.status) for i, r in enumerate(fake.requests) if r.path == TOKEN_PATH]


# --- retries, deadline -------------------------------------------------------------------


def test_retry_after_seconds_is_honoured(fake: FakeAcronis, client: AcronisClient) -> None:
    client.get_token_info()
    fake.inject(AGENTS, 429, retry_after=1)

    started = time.monotonic()
    agents = client.list_agents()
    elapsed = time.monotonic() - started

    assert len(agents) == len(fake.agents)
    assert elapsed >= 1.0
    assert fake.calls[AGENTS] == 2


def test_retry_after_http_date_is_honoured(fake: FakeAcronis, client: AcronisClient) -> None:
    client.get_token_info()
    # HTTP dates have whole seconds: "now + 2 s" is between 1 and 2 s away.
    fake.inject(AGENTS, 503, retry_after=email.utils.formatdate(time.time() + 2, usegmt=True))

    started = time.monotonic()
    client.list_agents()

    assert time.monotonic() - started >= 0.9
    assert fake.calls[AGENTS] == 2


def test_retry_after_beyond_the_deadline_fails_at_once_with_rate_limited(
    fake: FakeAcronis, client: AcronisClient
) -> None:
    fake.inject(AGENTS, 429, retry_after=30)

    started = time.monotonic()
    with pytest.raises(AcronisRateLimited) as info:
        client.list_agents()

    assert time.monotonic() - started < 1.0
    assert info.value.code == "ACRONIS_RATE_LIMITED"
    assert info.value.retry_after == 30
    assert info.value.http_status == 429
    assert info.value.to_dict()["retry_after"] == 30
    assert fake.calls[AGENTS] == 1


def test_server_error_is_retried_then_succeeds(fake: FakeAcronis, client: AcronisClient) -> None:
    fake.inject(AGENTS, 500, times=2)

    assert len(client.list_agents()) == len(fake.agents)
    assert fake.calls[AGENTS] == 3


def test_persistent_503_fails_with_server_error_within_the_deadline(fake: FakeAcronis, cache: DictCache) -> None:
    fake.inject(AGENTS, 503, times=None)

    with make_client(fake, cache, deadline=1.5, backoff_initial=0.1, backoff_max=0.4) as c:
        started = time.monotonic()
        with pytest.raises(AcronisServerError) as info:
            c.list_agents()
        elapsed = time.monotonic() - started

    assert info.value.code == "ACRONIS_SERVER_ERROR"
    assert info.value.upstream_status == 503
    assert elapsed < 1.5 + 0.5  # the deadline, plus scheduling slack on a busy machine
    assert fake.calls[AGENTS] == 3  # one try and two retries (Acronis advises two)


def test_persistent_503_with_retry_after_fails_rate_limited_within_the_deadline(
    fake: FakeAcronis, cache: DictCache
) -> None:
    fake.inject(AGENTS, 503, times=None, retry_after=1)

    with make_client(fake, cache, deadline=2.5) as c:
        started = time.monotonic()
        with pytest.raises(AcronisRateLimited) as info:
            c.list_agents()
        elapsed = time.monotonic() - started

    assert info.value.retry_after == 1
    # Attempts at 0 s, 1 s and 2 s (two on a very slow machine); a wait that would end
    # past the deadline is not started.
    assert fake.calls[AGENTS] in (2, 3)
    assert fake.calls[AGENTS] - 1 <= elapsed < 2.5 + 0.5


def test_slow_upstream_raises_timeout_error(fake: FakeAcronis, cache: DictCache) -> None:
    fake.inject(AGENTS, None, times=None, delay=3)

    with make_client(fake, cache, timeout=0.3, deadline=1.0) as c:
        c.get_token_info()
        started = time.monotonic()
        with pytest.raises(AcronisTimeoutError) as info:
            c.list_agents()
        elapsed = time.monotonic() - started

    assert info.value.code == "ACRONIS_TIMEOUT_ERROR"
    assert info.value.http_status == 504
    assert elapsed < 1.0 + 0.6  # the deadline, not the 3 s the server would take


def test_one_timeout_is_retried_then_succeeds(fake: FakeAcronis, cache: DictCache) -> None:
    fake.inject(AGENTS, None, delay=2)

    with make_client(fake, cache, timeout=0.3, deadline=3.0) as c:
        assert len(c.list_agents()) == len(fake.agents)

    assert fake.calls[AGENTS] == 2


def test_closed_port_raises_connection_error(cache: DictCache) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # The port is closed now: connections are refused.
    with AcronisClient(
        f"http://127.0.0.1:{port}",
        CLIENT_ID,
        SECRET,
        cache=cache,
        cache_key_prefix="acronis-test",
        timeout=0.5,
        deadline=1.0,
        backoff_initial=0.05,
    ) as c:
        started = time.monotonic()
        with pytest.raises(AcronisConnectionError) as info:
            c.list_agents()

    assert time.monotonic() - started < 1.0 + 0.5
    assert info.value.code == "ACRONIS_CONNECTION_ERROR"
    assert info.value.http_status == 502


# --- state shared by every worker: rate-limit backoff, circuit breaker ------------------


def test_clients_sharing_a_cache_share_the_rate_limit_backoff(fake: FakeAcronis, shared_cache: Any) -> None:
    # Two clients stand for two worker processes (a dashboard request and the poller).
    options = {"backoff_initial": 0.5, "backoff_max": 60.0}
    with (
        make_client(fake, shared_cache, **options) as first,
        make_client(fake, shared_cache, **options) as second,
    ):
        second.get_token_info()
        fake.reset_counters()
        fake.inject(AGENTS, 429, times=None, retry_after=1)
        with pytest.raises(AcronisRateLimited) as limited:
            first.list_agents()
        with pytest.raises(AcronisRateLimited) as waiting:
            second.get_token_info()

    assert fake.calls[AGENTS] == 3
    assert fake.calls[f"/api/2/clients/{CLIENT_ID}"] == 0  # the second one did not even try
    assert limited.value.retry_after >= 1 and waiting.value.retry_after > 0
    assert waiting.value.to_dict()["retry_after"] >= 1


def test_rate_limited_waits_grow_across_calls(fake: FakeAcronis, cache: DictCache) -> None:
    fake.inject(AGENTS, 429, times=None, retry_after=0)
    waits = []
    with make_client(fake, cache, backoff_initial=0.01, backoff_max=100.0, max_wait=0.0) as c:
        for _ in range(4):
            with pytest.raises(AcronisRateLimited) as info:
                c.list_agents()
            waits.append(info.value.retry_after)
            time.sleep(info.value.retry_after)

    assert fake.calls[AGENTS] == 4  # one probe per call: no wait fits max_wait
    assert waits == sorted(waits) and waits[-1] > 4 * waits[0]  # exponential


def test_clients_sharing_a_cache_share_the_circuit_breaker(shared_cache: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {
        "cache": shared_cache,
        "cache_key_prefix": "acronis-test",
        "timeout": 0.5,
        "deadline": 10.0,  # room for three attempts on a busy machine (each also talks to Redis)
        "backoff_initial": 0.01,
    }
    url = f"http://127.0.0.1:{port}"
    with AcronisClient(url, CLIENT_ID, SECRET, **options) as first:
        with pytest.raises(AcronisConnectionError):
            first.list_agents()  # three refused connections open the breaker
        assert first.upstream_status()["circuit_breaker"]["state"] == "open"

    with socket.socket() as listener, AcronisClient(url, CLIENT_ID, SECRET, **options) as second:
        listener.bind(("127.0.0.1", port))
        listener.listen(8)
        listener.setblocking(False)
        with pytest.raises(AcronisConnectionError) as info:
            second.get_token_info()
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected

    assert info.value.code == "ACRONIS_CONNECTION_ERROR"
    assert "not tried" in info.value.technical


# --- pagination --------------------------------------------------------------------------


def test_pagination_returns_every_activity_exactly_once(fake: FakeAcronis, client: AcronisClient) -> None:
    expected = expected_backup_ids(fake)

    activities = list(client.iter_activities(limit=7))

    ids = [a["idString"] for a in activities]
    assert sorted(ids) == sorted(expected)
    assert len(set(ids)) == len(ids)
    pages = [r for r in fake.requests if r.path == ACTIVITIES]
    assert len(pages) == math.ceil(len(expected) / 7)
    # Section 9: later pages send only the cursor and the limit.
    assert pages[0].query == {"limit": ["7"], "policyType": ["backup"]}
    assert all(set(r.query) == {"after", "limit"} for r in pages[1:])


def test_activity_filters_survive_pagination(fake: FakeAcronis, client: AcronisClient) -> None:
    since = datetime.now(UTC) - timedelta(days=20)
    expected = [
        a["idString"]
        for a in fake.activities
        if a["policy"]["type"].startswith("policy.backup")
        and datetime.fromisoformat(a["startedAt"].replace("Z", "+00:00")) > since
    ]

    activities = list(client.iter_activities(started_after=since, limit=5))

    assert sorted(a["idString"] for a in activities) == sorted(expected)
    assert len(activities) > 5  # spans several pages
    pages = [r for r in fake.requests if r.path == ACTIVITIES]
    assert pages[0].query["startedAt"] == [f"gt({since.strftime('%Y-%m-%dT%H:%M:%SZ')})"]


def test_activity_ids_are_read_from_id_string(fake: FakeAcronis, client: AcronisClient) -> None:
    activity = next(client.iter_activities(limit=3))

    assert int(activity["idString"]) > 2**53
    assert activity["idString"] == str(activity["id"])  # exact, not rounded through a float


def test_repeated_cursor_stops_pagination(fake: FakeAcronis, client: AcronisClient) -> None:
    fake.stick_cursor(ACTIVITIES)

    activities = list(client.iter_activities(limit=10))

    assert len(activities) == 20  # first page, then the stuck page once
    assert fake.calls[ACTIVITIES] == 2


def test_other_lists_follow_cursors(fake: FakeAcronis, client: AcronisClient) -> None:
    assert [a["id"] for a in client.list_agents(limit=1)] == [a["id"] for a in fake.agents]
    workloads = client.list_workloads(limit=2)
    assert [w["id"] for w in workloads] == [w["id"] for w in fake.workloads]
    assert workloads[0]["agent_id"] == fake.agents[0]["id"]
    assert len(client.list_policy_statuses(limit=4)) == len(fake.policy_statuses)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "code"),
    [("wrapped", 1006), ("wrapped", "ValidationError"), ("flat", "InvalidFilter"), ("flat", 42)],
)
def test_both_error_shapes_reach_the_message(
    fake: FakeAcronis, client: AcronisClient, shape: str, code: int | str
) -> None:
    fake.inject(ACTIVITIES, 400, shape=shape, code=code, message="completedAt is malformed")

    with pytest.raises(AcronisClientError) as info:
        list(client.iter_activities())

    error = info.value
    assert error.code == "ACRONIS_CLIENT_ERROR"
    assert "completedAt is malformed" in error.message
    assert "completedAt is malformed" in error.technical
    assert error.upstream_code == code
    assert error.upstream_domain == "TaskManager"
    assert fake.calls[ACTIVITIES] == 1  # a 400 is not retried


def test_forbidden_is_a_permission_error(fake: FakeAcronis, client: AcronisClient) -> None:
    fake.inject(AGENTS, 403)

    with pytest.raises(AcronisPermissionError) as info:
        client.list_agents()

    assert info.value.code == "ACRONIS_PERMISSION_ERROR"
    assert info.value.to_dict()["details"]["technical_error"].startswith("GET " + AGENTS)


def test_get_agent_matches_case_insensitively(fake: FakeAcronis, client: AcronisClient) -> None:
    agent = client.get_agent(fake.agents[1]["id"].upper())

    assert agent["hostname"] == fake.agents[1]["hostname"]
    assert email.utils.parsedate_to_datetime(agent["registration_date"]).tzinfo is not None


def test_unknown_agent_raises_agent_not_found(fake: FakeAcronis, client: AcronisClient) -> None:
    with pytest.raises(AcronisAgentNotFound) as info:
        client.get_agent(str(uuid.uuid4()))

    assert info.value.code == "ACRONIS_AGENT_NOT_FOUND"
    assert info.value.http_status == 404


def test_malformed_agent_id_is_refused_before_any_call(fake: FakeAcronis, client: AcronisClient) -> None:
    with pytest.raises(AcronisInvalidAgentId):
        client.get_agent("../../2/clients")

    assert fake.requests == []


def test_health_check_reports_timings_and_tenant(fake: FakeAcronis, client: AcronisClient) -> None:
    first = client.check_health()
    second = client.check_health()

    assert first["api_status"] == "connected"
    assert first["tenant_id"] == fake.root_tenant_uuid
    assert first["token_cached"] is False
    assert second["token_cached"] is True
    assert first["response_time_ms"] >= 0 and first["total_time_ms"] >= first["token_time_ms"]


def test_base_url_with_api_suffix_is_accepted(fake: FakeAcronis, cache: DictCache) -> None:
    with make_client(fake, cache, base_url=fake.base_url + "/api/") as c:
        assert c.get_token_info()["type"] == "api_client"


# --- secrets -----------------------------------------------------------------------------


def test_secret_and_tokens_never_appear_in_logs_or_errors(
    fake: FakeAcronis, cache: DictCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # root: our logger, httpx and httpcore included
    errors: list[AcronisError] = []
    with make_client(fake, cache, timeout=0.3, deadline=1.0) as c:
        c.check_health()
        c.list_agents(limit=2)
        for path, status, kwargs in [
            (AGENTS, 401, {"times": 2}),
            (AGENTS, 500, {"times": None}),
            (AGENTS, 429, {"retry_after": 60}),
            (AGENTS, None, {"times": None, "delay": 1}),
        ]:
            fake.clear_injections()
            fake.inject(path, status, **kwargs)
            with pytest.raises(AcronisError) as info:
                c.list_agents()
            errors.append(info.value)
        fake.clear_injections()
    # The token endpoint echoing the secret back must not leak it either.
    fake.inject(TOKEN_PATH, 401, message=f"bad secret {SECRET}")
    with make_client(fake, DictCache()) as other:
        with pytest.raises(AcronisCredentialsInvalid) as info:
            other.get_token_info()
        errors.append(info.value)

    basic = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()
    forbidden = [SECRET, basic, *fake.tokens]
    assert len(fake.tokens) >= 2
    texts = [record.getMessage() for record in caplog.records]
    texts += [str(record.args) for record in caplog.records]
    for error in errors:
        texts += [str(error), repr(error), error.message, error.technical]
        texts.append(json.dumps(error.to_dict()))
    assert any("Acronis GET " + AGENTS in t for t in texts)  # calls are logged...
    for text in texts:
        for secret in forbidden:
            assert secret not in text  # ...without credentials
    assert SECRET not in repr(c)


# --- pure helpers ------------------------------------------------------------------------


def test_retry_after_parsing() -> None:
    now = time.time()
    assert parse_retry_after("2") == 2
    assert parse_retry_after(email.utils.formatdate(now + 10, usegmt=True), now=now) == (pytest.approx(10, abs=1))
    assert parse_retry_after(email.utils.formatdate(now - 10, usegmt=True), now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@given(st.text())
def test_retry_after_never_raises_nor_goes_negative(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (seconds >= 0 and math.isfinite(seconds))


def test_error_body_shapes() -> None:
    wrapped = {"error": {"code": 1006, "message": "No.", "domain": "PlatformAccountServer"}}
    flat = {"code": "NotFound", "domain": "TaskManager", "message": "Gone."}
    oauth = {"error": "invalid_client", "error_description": "Bad client."}
    assert parse_error_body(wrapped) == (1006, "PlatformAccountServer", "No.")
    assert parse_error_body(flat) == ("NotFound", "TaskManager", "Gone.")
    assert parse_error_body(oauth) == ("invalid_client", None, "Bad client.")
    assert parse_error_body("<html>") == (None, None, None)
