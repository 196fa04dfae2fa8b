"""Tenant isolation (config, cache, WebSocket events), single-flight, poller, command, admin."""

from __future__ import annotations

import asyncio
import threading
from io import StringIO

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.core.management import call_command
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from acronis import selectors, services, tasks
from acronis.models import AcronisConfig, AcronisPollState
from backupplatform.asgi import application

from .conftest import AGENTS, SECRET, SECRET_B, TOKEN


@pytest.mark.django_db
def test_tenant_b_never_sees_a_data_or_cache(api, viewer_a, admin_b, configured_a, configured_b, fake, fake_b):
    fake_b.agents = fake_b.agents[:1]
    fake_b.agents[0] = {**fake_b.agents[0], "hostname": "BRAVO-ONLY"}
    a = api(viewer_a).get("/api/acronis/agents").json()
    b = api(admin_b).get("/api/acronis/agents").json()
    assert {x["hostname"] for x in b["data"]} == {"BRAVO-ONLY"}
    assert b["cache_info"]["cached"] is False  # A's cached list is not B's
    assert "BRAVO-ONLY" not in {x["hostname"] for x in a["data"]}
    assert fake.calls[AGENTS] == 1 and fake_b.calls[AGENTS] == 1
    assert fake.calls[TOKEN] == 1 and fake_b.calls[TOKEN] == 1
    # B's config change leaves A's cache alone.
    api(admin_b).put(
        "/api/acronis/config", {"base_url": fake_b.base_url, "client_id": "acr-client-bravo"}, format="json"
    )
    assert api(viewer_a).get("/api/acronis/agents").json()["cache_info"]["cached"] is True
    assert SECRET_B not in str(a) and SECRET not in str(b)


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_requests_fetch_agents_once(configured_a, tenant_a, fake):
    fake.inject(AGENTS, None, times=1, delay=0.3)  # keep the first load in flight
    errors: list[BaseException] = []
    results: list[int] = []
    barrier = threading.Barrier(50)

    def worker():
        from django.db import connection

        try:
            barrier.wait()
            rows, _ = selectors.agents_list(tenant=tenant_a)
            results.append(len(rows))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and results == [4] * 50
    assert fake.calls[AGENTS] == 1 and fake.calls[TOKEN] == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_backup_status_updates_reach_only_the_tenants_sockets(
    admin_a, admin_b, tenant_a, tenant_b, fake, fake_b, settings
):
    await database_sync_to_async(services.config_save)(
        tenant=tenant_a, base_url=fake.base_url, client_id="acr-client-alpha", client_secret=SECRET, create=True
    )
    await database_sync_to_async(services.config_save)(
        tenant=tenant_b, base_url=fake_b.base_url, client_id="acr-client-bravo", client_secret=SECRET_B, create=True
    )
    token_a = await database_sync_to_async(lambda: str(AccessToken.for_user(admin_a)))()
    token_b = await database_sync_to_async(lambda: str(AccessToken.for_user(admin_b)))()
    ws_a = WebsocketCommunicator(application, f"/api/acronis/ws?token={token_a}")
    ws_b = WebsocketCommunicator(application, f"/api/acronis/ws?token={token_b}")
    assert (await ws_a.connect(timeout=5))[0] and (await ws_b.connect(timeout=5))[0]

    # First poll of each tenant records the baseline without events.
    assert (await database_sync_to_async(services.poll_tenant)(tenant=tenant_a))["events"] == 0
    assert (await database_sync_to_async(services.poll_tenant)(tenant=tenant_b))["events"] == 0
    assert await ws_a.receive_nothing(timeout=0.3)

    running = next(a for a in fake.activities if a["state"] == "started")
    fake.set_activity_state(running["idString"], "completed", result_code="error")
    result = await database_sync_to_async(tasks.poll_tenant)(tenant_a.pk)  # the Celery task body
    assert result["events"] == 1
    event = await ws_a.receive_json_from(timeout=5)
    assert event["type"] == "backup_status_update"
    assert event["data"]["backup_id"] == running["idString"]
    assert event["data"]["status"] == "failed"
    assert event["data"]["agent_id"] == running["executor"]["id"]
    assert event["data"]["timestamp"].endswith("Z")
    assert await ws_b.receive_nothing(timeout=0.5)

    # Nothing changed: no event; B's own change goes to B only.
    assert (await database_sync_to_async(services.poll_tenant)(tenant=tenant_a))["events"] == 0
    added = fake_b.add_activity(state="started", result_code=None)
    assert (await database_sync_to_async(services.poll_tenant)(tenant=tenant_b))["events"] == 1
    event_b = await ws_b.receive_json_from(timeout=5)
    assert event_b["data"]["backup_id"] == added["idString"] and event_b["data"]["status"] == "running"
    assert await ws_a.receive_nothing(timeout=0.5)
    await ws_a.disconnect()
    await ws_b.disconnect()
    await asyncio.sleep(0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_unauthenticated_acronis_socket_is_closed(db):
    ws = WebsocketCommunicator(application, "/api/acronis/ws")
    connected, _ = await ws.connect(timeout=5)
    assert connected
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 4401}


@pytest.mark.django_db
def test_poll_all_queues_configured_tenants(configured_a, tenant_b, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from backupplatform.celery import app

    app.conf.task_always_eager = True
    try:
        assert tasks.poll_all() == 1
    finally:
        app.conf.task_always_eager = False
    assert AcronisPollState.objects.filter(tenant=configured_a.tenant).exists()


@pytest.mark.django_db
def test_acronis_check_command(configured_a, fake):
    out = StringIO()
    call_command("acronis_check", "--tenant", "alpha", stdout=out)
    text = out.getvalue()
    assert "alpha: connected" in text and "agents: 4, workloads: 7" in text
    assert SECRET not in text


@pytest.mark.django_db
def test_acronis_check_command_failure(tenant_a, fake):
    from django.core.management.base import CommandError

    services.config_save(
        tenant=tenant_a, base_url=fake.base_url, client_id="acr-client-alpha", client_secret="wrong-one", create=True
    )
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("acronis_check", stdout=out)
    assert "ACRONIS_CREDENTIALS_INVALID" in out.getvalue()


@pytest.mark.django_db
def test_admin_secret_write_only_health_action_and_overview(superuser, configured_a, fake):
    client = Client()
    client.force_login(superuser)
    change = client.get(f"/admin/acronis/acronisconfig/{configured_a.pk}/change/")
    assert change.status_code == 200 and SECRET.encode() not in change.content
    # Saving without a secret keeps the stored one.
    response = client.post(
        f"/admin/acronis/acronisconfig/{configured_a.pk}/change/",
        {
            "base_url": fake.base_url,
            "client_id": "acr-client-alpha",
            "client_secret": "",
            "grant_type": "client_credentials",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    assert AcronisConfig.objects.get().client_secret == SECRET
    action = client.post(
        "/admin/acronis/acronisconfig/", {"action": "check_health", "_selected_action": [configured_a.pk]}, follow=True
    )
    assert b"connected in" in action.content
    overview = client.get(f"/admin/acronis/acronisconfig/{configured_a.pk}/overview/")
    assert overview.status_code == 200
    assert b"DESKTOP-JRPTA4A" in overview.content and b"Recent backups" in overview.content
