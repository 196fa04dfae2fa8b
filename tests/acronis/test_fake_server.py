"""The fake Acronis server keeps the §11 contract the client tests rely on (raw httpx)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.acronis_fake import FakeAcronis, parse_time

CLIENT_ID = "fake-test-client"
SECRET = "fake-test-secret-123"
ACTIVITIES = "/api/task_manager/v2/activities"


@pytest.fixture
def fake() -> Iterator[FakeAcronis]:
    with FakeAcronis(CLIENT_ID, SECRET, activity_count=60) as server:
        yield server


@pytest.fixture
def http(fake: FakeAcronis) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, timeout=5) as client:
        yield client


def _token(http: httpx.Client, secret: str = SECRET) -> httpx.Response:
    return http.post(
        "/api/2/idp/token",
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, secret),
    )


@pytest.fixture
def authed(http: httpx.Client) -> httpx.Client:
    http.headers["Authorization"] = f"Bearer {_token(http).json()['access_token']}"
    return http


def test_token_endpoint_checks_basic_credentials(fake: FakeAcronis, http: httpx.Client) -> None:
    good = _token(http)
    bad = _token(http, "wrong")

    assert good.status_code == 200
    body = good.json()
    assert body["token_type"] == "bearer"
    assert abs(body["expires_on"] - (time.time() + 7200)) < 5
    assert bad.status_code == 401
    assert bad.json()["error"]["domain"] == "PlatformAccountServer"


def test_unknown_and_expired_tokens_get_401(fake: FakeAcronis, http: httpx.Client) -> None:
    unknown = http.get("/api/agent_manager/v2/agents", headers={"Authorization": "Bearer nope"})
    fake.token_lifetime = 0.2
    token = _token(http).json()["access_token"]
    time.sleep(0.3)
    expired = http.get("/api/agent_manager/v2/agents", headers={"Authorization": f"Bearer {token}"})

    assert unknown.status_code == 401
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "AuthenticationTimeout"


def test_cursor_encodes_the_filters(fake: FakeAcronis, authed: httpx.Client) -> None:
    workload_id = fake.workloads[1]["id"]
    first = authed.get(ACTIVITIES, params={"resourceId": workload_id, "limit": 3}).json()
    cursor = first["paging"]["cursors"]["after"]
    second = authed.get(ACTIVITIES, params={"after": cursor, "limit": 3}).json()

    assert json.loads(base64.urlsafe_b64decode(cursor))["q"] == {"resourceId": [workload_id]}
    items = first["items"] + second["items"]
    assert len(items) == 6
    assert {a["resource"]["id"].lower() for a in items} == {workload_id}
    assert first["size"] == 3 and "timeStamp" in first


def test_activity_time_state_and_order_filters(fake: FakeAcronis, authed: httpx.Client) -> None:
    low = datetime.now(UTC) - timedelta(days=5)
    high = datetime.now(UTC) - timedelta(days=2)
    params = [
        ("completedAt", f"gt({low:%Y-%m-%dT%H:%M:%SZ})"),
        ("completedAt", f"lt({int(high.timestamp())})"),
        ("state", "or(completed,started)"),
        ("order", "desc(completedAt)"),
        ("limit", "1000"),
    ]
    items = authed.get(ACTIVITIES, params=params).json()["items"]

    times = [parse_time(a["completedAt"]) for a in items]
    assert items and all(low.timestamp() < t < high.timestamp() for t in times)
    assert times == sorted(times, reverse=True)


def test_task_manager_errors_are_flat_and_others_wrapped(fake: FakeAcronis, authed: httpx.Client) -> None:
    bad_cursor = authed.get(ACTIVITIES, params={"after": "garbage"})
    missing = authed.get("/api/agent_manager/v2/agents/0b0e3f4c-0000-4000-8000-000000000000")

    assert bad_cursor.status_code == 400
    assert set(bad_cursor.json()) == {"code", "domain", "message"}
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NotFound"


def test_injection_counts_down_and_sends_retry_after(fake: FakeAcronis, authed: httpx.Client) -> None:
    fake.inject("/api/agent_manager", 429, times=2, retry_after=2, shape="flat")

    answers = [authed.get("/api/agent_manager/v2/agents") for _ in range(3)]

    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[0].json()["code"] == "tooManyRequests"
    assert fake.calls["/api/agent_manager/v2/agents"] == 3


def test_activities_can_be_added_and_completed(fake: FakeAcronis, authed: httpx.Client) -> None:
    added = fake.add_activity(resource_id=fake.workloads[2]["id"].upper(), state="started")
    running = authed.get(f"{ACTIVITIES}/{added['idString']}").json()
    fake.set_activity_state(added["idString"], "completed", result_code="error")
    done = authed.get(f"{ACTIVITIES}/{added['idString']}").json()

    assert running["state"] == "started" and "completedAt" not in running
    assert done["state"] == "completed"
    assert done["result"]["code"] == "error"
    assert done["executor"]["id"] == fake.workloads[2]["agent_id"]
    assert int(done["idString"]) > 2**53


def test_seed_data_has_the_awkward_parts(fake: FakeAcronis) -> None:
    agents_with_workloads = [w.get("agent_id") for w in fake.workloads]
    assert None in agents_with_workloads  # a workload without an agent
    assert max(agents_with_workloads.count(a["id"]) for a in fake.agents) >= 3
    assert any("parentActivityIdString" in a for a in fake.activities)
    assert any(not a["policy"]["type"].startswith("policy.backup") for a in fake.activities)
    assert all(a["registration_date"].endswith("+0000") for a in fake.agents)


def test_customer_scoped_tokens_see_their_customer_only(fake: FakeAcronis, authed: httpx.Client) -> None:
    partner = authed.headers["Authorization"].split(" ", 1)[1]
    customer = fake.tenants[0]
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": partner,
        "scope": f"urn:acronis.com:tenant-id:{customer['uuid']}",
    }
    scoped = authed.post("/api/2/idp/token", data=form)
    unknown = authed.post("/api/2/idp/token", data={**form, "scope": "urn:acronis.com:tenant-id:x"})
    shortcut = authed.post(
        "/api/2/idp/token",
        data={"grant_type": "client_credentials", "scope": form["scope"]},
        auth=(CLIENT_ID, SECRET),
    )

    assert scoped.status_code == 200 and unknown.status_code == 403 and shortcut.status_code == 400
    token = scoped.json()["access_token"]
    agents = authed.get("/api/agent_manager/v2/agents", headers={"Authorization": f"Bearer {token}"}).json()["items"]
    assert agents and {a["tenant"]["id"] for a in agents} == {customer["id"]}


def test_policy_statuses_need_a_tenant_uuid(fake: FakeAcronis, authed: httpx.Client) -> None:
    path = "/api/policy_management/v4/policy_statuses"
    missing = authed.get(path)
    everything = authed.get(path, params={"tenant_id": fake.root_tenant_uuid})
    one = authed.get(path, params={"tenant_id": fake.tenants[1]["uuid"]})

    assert missing.status_code == 400
    assert len(everything.json()["items"]) == len(fake.policy_statuses)
    assert {i["context"]["tenant_id"] for i in one.json()["items"]} == {fake.tenants[1]["id"]}
