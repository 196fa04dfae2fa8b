"""Data routes against the loopback fake: shapes, joins, dates, pagination, cache_info."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from acronis.models import AcronisAgentState

from .conftest import ACTIVITIES, AGENTS, SECRET, TOKEN, WORKLOADS

pytestmark = pytest.mark.django_db

SEED_DATE = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}:\d{2}$")


def test_agents_shape_pagination_and_cache_info(api, viewer_a, configured_a, fake):
    client = api(viewer_a)
    first = client.get("/api/acronis/agents")
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["success"] is True and body["count"] == 4 and body["timestamp"].endswith("Z")
    assert body["cache_info"]["cached"] is False and body["cache_info"]["expires_in"] == 300
    assert body["pagination"]["total"] == 4 and body["pagination"]["per_page"] == 50
    agent = next(a for a in body["data"] if a["hostname"] == "DESKTOP-JRPTA4A")
    assert set(agent) == {"id_agent", "hostname", "id_tenant", "online", "uptime", "uptime_timestamp", "platform"}
    assert agent["id_tenant"] == "1496265" and agent["online"] is True
    assert agent["platform"] == {"family": "Windows", "arch": "x64", "name": "windows", "version": "10.0"}
    assert agent["uptime"] == "0 minutes" and isinstance(agent["uptime_timestamp"], float)
    offline = next(a for a in body["data"] if a["hostname"] == "srv-linux-01")
    assert offline["uptime"] is None and offline["uptime_timestamp"] is None

    time.sleep(1.1)
    second = client.get("/api/acronis/agents?page=2&per_page=3").json()
    assert second["cache_info"]["cached"] is True and second["cache_info"]["cache_age"] >= 1
    assert second["cache_info"]["expires_in"] <= 299
    assert second["count"] == 1 and second["pagination"] == {
        "page": 2,
        "per_page": 3,
        "total": 4,
        "pages": 2,
        "has_next": False,
        "has_prev": True,
        "next_page": None,
        "prev_page": 1,
    }
    assert fake.calls[AGENTS] == 1 and fake.calls[TOKEN] == 1
    assert SECRET not in first.content.decode()


def test_per_page_above_200_is_validation_error(api, viewer_a, configured_a):
    response = api(viewer_a).get("/api/acronis/agents?per_page=201")
    assert response.status_code == 400 and response.json()["error_code"] == "ACRONIS_VALIDATION_ERROR"


def test_uptime_is_derived_from_first_seen_online(api, viewer_a, configured_a, tenant_a):
    api(viewer_a).get("/api/acronis/agents")
    state = AcronisAgentState.objects.get(tenant=tenant_a, hostname="DESKTOP-JRPTA4A")
    state.online_since = datetime.now(UTC) - timedelta(days=5, hours=3, minutes=20, seconds=5)
    state.save()
    from django.core.cache import cache

    cache.clear()
    agent = next(
        a for a in api(viewer_a).get("/api/acronis/agents").json()["data"] if a["hostname"] == "DESKTOP-JRPTA4A"
    )
    assert agent["uptime"] == "5 days, 3 hours, 20 minutes"
    assert abs(agent["uptime_timestamp"] - state.online_since.timestamp()) < 0.01


def test_agent_going_offline_ends_the_streak(api, viewer_a, configured_a, tenant_a, fake):
    from django.core.cache import cache

    api(viewer_a).get("/api/acronis/agents")
    fake.agents[0]["online"] = False
    cache.clear()
    api(viewer_a).get("/api/acronis/agents")
    state = AcronisAgentState.objects.get(tenant=tenant_a, agent_id=fake.agents[0]["id"])
    assert state.online is False and state.online_since is None
    fake.agents[0]["online"] = True
    cache.clear()
    agent = api(viewer_a).get("/api/acronis/agents").json()["data"][0]
    assert agent["uptime"] == "0 minutes"


def test_agents_pagination_across_several_upstream_pages(api, viewer_a, configured_a, fake):
    base = dict(fake.agents[0])
    for n in range(230):
        fake.agents.append({**base, "id": str(uuid.uuid4()), "hostname": f"BULK-{n:03d}"})
    body = api(viewer_a).get("/api/acronis/agents?per_page=200&page=2").json()
    assert body["pagination"]["total"] == 234 and body["count"] == 34
    assert fake.calls[AGENTS] == 3  # client pages of 100 followed through the after cursor


def test_workloads_shape(api, viewer_a, configured_a):
    body = api(viewer_a).get("/api/acronis/workloads").json()
    assert body["count"] == 7
    row = next(w for w in body["data"] if w["hostname"] == "VM-SQL-01")
    assert set(row) == {"id_workload", "hostname", "id_tenant", "type", "status"}
    assert row["type"] == "virtual_machine.mshyperv" and row["status"] == "active" and row["id_tenant"] == "1496265"


def test_associations_direct_policy_and_hostname(api, viewer_a, configured_a, fake):
    hv = next(a for a in fake.agents if a["hostname"] == "HV-HOST-01")
    desk = next(a for a in fake.agents if a["hostname"] == "DESKTOP-JRPTA4A")
    # VM-SQL-01 loses its agent_id: found through policy statuses' context.agent_id.
    sql = next(w for w in fake.workloads if w["name"] == "VM-SQL-01")
    del sql["agent_id"]
    # DESKTOP's workload loses both: found by hostname within the tenant.
    desktop = next(w for w in fake.workloads if w["name"] == "DESKTOP-JRPTA4A")
    del desktop["agent_id"]
    for status in fake.policy_statuses:
        if status["context"]["id"] == desktop["id"]:
            status["context"]["agent_id"] = None
    body = api(viewer_a).get("/api/acronis/associations").json()
    by_workload = {r["workload_id"]: r for r in body["data"]}
    assert by_workload[sql["id"]] == {
        "agent_id": hv["id"],
        "workload_id": sql["id"],
        "hostname": "VM-SQL-01",
        "association_type": "policy",
    }
    assert by_workload[desktop["id"]]["association_type"] == "hostname"
    assert by_workload[desktop["id"]]["agent_id"] == desk["id"]
    web = next(w for w in fake.workloads if w["name"] == "VM-WEB-01")
    assert by_workload[web["id"]]["association_type"] == "direct"
    mailbox = next(w for w in fake.workloads if w["name"] == "anna@globex.example")
    assert mailbox["id"] not in by_workload  # no agent at all: no association
    assert body["count"] == 6 and "cache_info" in body and "pagination" in body


def test_backups_grouped_per_workload_root_only(api, viewer_a, configured_a, fake):
    body = api(viewer_a).get("/api/acronis/backups?limit=5").json()
    assert body["success"] is True and body["cache_info"]["cached"] is False
    data = body["data"]
    cutoff = datetime.now(UTC) - timedelta(days=30)
    roots = [
        a
        for a in fake.activities
        if "parentActivityIdString" not in a
        and a["policy"]["type"].startswith("policy.backup")
        and datetime.fromisoformat(a["startedAt"].replace("Z", "+00:00")) > cutoff
    ]
    summary = data["summary"]
    assert summary["num_backups"] == len(roots)
    ok = sum(1 for a in roots if a.get("result", {}).get("code") in ("ok", "warning"))
    failed = sum(1 for a in roots if a.get("result", {}).get("code") == "error")
    assert (summary["success"], summary["failed"]) == (ok, failed)
    assert summary["success_rate"] == round(100 * ok / (ok + failed), 2)
    assert summary["total_bytes_saved"] == sum(a["context"]["_runtime"]["bytesSaved"] for a in roots)
    workload_ids = {w["id"] for w in fake.workloads}
    assert set(data["workload_data"]) <= workload_ids  # upper-case resource ids were folded in
    assert len(data["workload_data"]) == 6
    group = data["workload_data"][fake.workloads[0]["id"]]
    assert group["hostname"] == "DESKTOP-JRPTA4A" and group["id_tenant"] == "1496265"
    assert group["backup_count"] == sum(1 for a in roots if a["resource"]["id"].lower() == fake.workloads[0]["id"])
    assert len(group["backups"]) == 5
    backup = group["backups"][0]
    assert SEED_DATE.match(backup["started_at"])
    assert {
        "started_at",
        "completed_at",
        "state",
        "run_mode",
        "bytes_saved",
        "result",
        "duration_minutes",
        "activities",
    } <= set(backup)
    finished = next(b for g in data["workload_data"].values() for b in g["backups"] if b["state"] == "completed")
    assert SEED_DATE.match(finished["completed_at"]) and finished["run_mode"] == "Scheduled"
    assert isinstance(finished["duration_minutes"], int)
    with_children = [b for g in data["workload_data"].values() for b in g["backups"] if b["activities"]]
    assert with_children and with_children[0]["activities"][0]["type"] == "backup"


def test_backups_days_window_and_cache(api, viewer_a, configured_a, fake):
    client = api(viewer_a)
    week = client.get("/api/acronis/backups?days=7").json()["data"]["summary"]["num_backups"]
    month = client.get("/api/acronis/backups").json()["data"]["summary"]["num_backups"]
    assert 0 < week < month
    again = client.get("/api/acronis/backups").json()
    assert again["cache_info"]["cached"] is True and again["cache_info"]["expires_in"] <= 120
    assert fake.calls[ACTIVITIES] >= 3  # several upstream pages of 100


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "days=0", "days=9999"])
def test_backups_bad_parameters(api, viewer_a, configured_a, query):
    response = api(viewer_a).get(f"/api/acronis/backups?{query}")
    assert response.status_code == 400 and response.json()["error_code"] == "ACRONIS_VALIDATION_ERROR"


def test_agent_backups(api, viewer_a, configured_a, fake):
    hv = next(a for a in fake.agents if a["hostname"] == "HV-HOST-01")
    body = api(viewer_a).get(f"/api/acronis/agent/{hv['id'].upper()}/backups?limit=3").json()
    assert body["success"] is True
    data = body["data"]
    assert data["agent_info"] == {"id_agent": hv["id"], "hostname": "HV-HOST-01", "online": True}
    assert data["backup_summary"]["total_backups"] > 3 and len(data["backups"]) == 3
    backup = data["backups"][0]
    assert {"backup_id", "bytes_saved_formatted", "activities", "duration_minutes"} <= set(backup)
    assert re.match(r"^\d+\.\d (B|KB|MB|GB|TB)$|^\d+ B$", backup["bytes_saved_formatted"])
    without = api(viewer_a).get(f"/api/acronis/agent/{hv['id']}/backups?include_activities=false").json()
    assert "activities" not in without["data"]["backups"][0]


def test_agent_backups_invalid_and_unknown_agent(api, viewer_a, configured_a, fake):
    bad = api(viewer_a).get("/api/acronis/agent/not-a-guid/backups")
    assert bad.status_code == 400 and bad.json()["error_code"] == "ACRONIS_INVALID_AGENT_ID"
    assert fake.calls[AGENTS] == 0  # checked before any upstream call
    missing = api(viewer_a).get(f"/api/acronis/agent/{uuid.uuid4()}/backups")
    assert missing.status_code == 404 and missing.json()["error_code"] == "ACRONIS_AGENT_NOT_FOUND"
    assert missing.json()["help"]


def test_data_routes_without_config(api, viewer_a):
    for route in ("agents", "workloads", "associations", "backups", f"agent/{uuid.uuid4()}/backups"):
        response = api(viewer_a).get(f"/api/acronis/{route}")
        assert response.status_code == 404 and response.json()["error_code"] == "ACRONIS_CONFIG_MISSING", route


def test_workloads_cache_is_separate_and_config_change_invalidates(api, admin_a, configured_a, fake):
    client = api(admin_a)
    client.get("/api/acronis/workloads")
    assert client.get("/api/acronis/workloads").json()["cache_info"]["cached"] is True
    client.put("/api/acronis/config", {"base_url": fake.base_url, "client_id": configured_a.client_id}, format="json")
    assert client.get("/api/acronis/workloads").json()["cache_info"]["cached"] is False
    assert fake.calls[WORKLOADS] == 2
