"""``/ws`` (db-backup-platform.md "WebSocket Events"): authentication and tenant isolation."""

from __future__ import annotations

import asyncio
import threading

import pytest
from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.test import Client
from rest_framework_simplejwt.tokens import AccessToken

from audit.services import emit
from backupplatform.asgi import application
from tenants import services as tenant_services
from tenants.models import Role

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def connect(path: str, **kwargs) -> tuple[WebsocketCommunicator, bool, object]:
    communicator = WebsocketCommunicator(application, path, **kwargs)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


@database_sync_to_async
def emit_in(tenant, action):
    emit(action=action, tenant=tenant, resource_type="probe", details={"password": "hunter2"})


async def test_unauthenticated_socket_is_closed_with_4401(db):
    communicator, connected, _ = await connect("/ws")
    assert connected
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_bad_token_is_closed_with_4401(db):
    communicator, _, _ = await connect("/ws?token=garbage")
    closed = await communicator.receive_output(timeout=5)
    assert closed["code"] == 4401


async def test_jwt_in_query_receives_own_tenant_events_only(admin_a, admin_b, tenant_a, tenant_b):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(admin_a)))()
    communicator, connected, _ = await connect(f"/ws?token={token}")
    assert connected
    await emit_in(tenant_b, "other_tenant_event")
    await emit_in(tenant_a, "own_event")
    event = await communicator.receive_json_from(timeout=5)
    assert event["type"] == "audit" and event["action"] == "own_event"
    assert event["details"]["password"] == "[HIDDEN]"
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_jwt_as_subprotocol_is_accepted(admin_a, tenant_a):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(admin_a)))()
    communicator, connected, subprotocol = await connect("/ws", subprotocols=["bearer", token])
    assert connected and subprotocol == "bearer"
    await emit_in(tenant_a, "via_subprotocol")
    assert (await communicator.receive_json_from(timeout=5))["action"] == "via_subprotocol"
    await communicator.disconnect()


async def test_admin_session_cookie_authenticates(superuser, tenant_a):
    def session_cookie():
        client = Client()
        client.force_login(superuser)
        return client.cookies["sessionid"].value

    cookie = await database_sync_to_async(session_cookie)()
    communicator, connected, _ = await connect("/ws", headers=[(b"cookie", f"sessionid={cookie}".encode())])
    assert connected
    await emit_in(tenant_a, "seen_by_operator")
    assert (await communicator.receive_json_from(timeout=5))["action"] == "seen_by_operator"
    await communicator.disconnect()


async def test_a_session_lacking_the_second_factor_its_tenant_now_requires_is_refused(admin_a, tenant_a):
    def session_cookie():
        client = Client()
        client.force_login(admin_a)  # a password-only session, opened before the policy
        tenant_services.tenant_two_factor_set(tenant=tenant_a, required=True, actor=admin_a)
        return client.cookies["sessionid"].value

    cookie = await database_sync_to_async(session_cookie)()
    communicator, connected, _ = await connect("/ws", headers=[(b"cookie", f"sessionid={cookie}".encode())])
    assert connected
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_api_key_socket_sees_only_its_tenant(tenant_a, tenant_b):
    _, raw = await database_sync_to_async(tenant_services.api_key_create)(
        tenant=tenant_b, name="dash", role=Role.VIEWER
    )
    communicator, connected, _ = await connect(f"/ws?api_key={raw}")
    assert connected
    await emit_in(tenant_a, "not_for_b")
    await emit_in(tenant_b, "for_b")
    event = await communicator.receive_json_from(timeout=5)
    assert event["action"] == "for_b"
    await communicator.disconnect()


async def test_workspace_filter_for_other_tenant_is_refused(admin_a, tenant_b):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(admin_a)))()
    communicator, _, _ = await connect(f"/ws?token={token}&workspace=bravo")
    closed = await communicator.receive_output(timeout=5)
    assert closed["code"] == 4403


async def test_foreign_browser_origin_is_refused(admin_a):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(admin_a)))()
    communicator = WebsocketCommunicator(
        application, f"/ws?token={token}", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected
    await asyncio.sleep(0)


async def _open_jwt(user):
    token = await database_sync_to_async(lambda: str(AccessToken.for_user(user)))()
    communicator, connected, _ = await connect(f"/ws?token={token}")
    assert connected
    return communicator


async def _assert_cut_off(communicator, tenant):
    """After the change, the socket is closed (4403) and the tenant's next event never arrives."""
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4403}
    await emit_in(tenant, "after_revocation")
    assert await communicator.receive_nothing(timeout=0.5)


async def test_socket_stops_receiving_when_the_membership_is_removed(admin_a, viewer_a, tenant_a):
    communicator = await _open_jwt(viewer_a)
    await emit_in(tenant_a, "before")
    assert (await communicator.receive_json_from(timeout=5))["action"] == "before"

    @database_sync_to_async
    def remove():
        membership = viewer_a.memberships.get(tenant=tenant_a)
        tenant_services.member_remove(membership=membership, actor=admin_a)

    await remove()
    await _assert_cut_off(communicator, tenant_a)


async def test_socket_stops_receiving_when_the_user_is_deactivated(viewer_a, tenant_a):
    communicator = await _open_jwt(viewer_a)

    @database_sync_to_async
    def deactivate():
        viewer_a.is_active = False
        viewer_a.save()

    await deactivate()
    await _assert_cut_off(communicator, tenant_a)


async def test_socket_of_a_revoked_api_key_stops_receiving(tenant_a):
    key, raw = await database_sync_to_async(tenant_services.api_key_create)(tenant=tenant_a, name="k", role=Role.VIEWER)
    communicator, connected, _ = await connect(f"/ws?api_key={raw}")
    assert connected
    await emit_in(tenant_a, "before")
    assert (await communicator.receive_json_from(timeout=5))["action"] == "before"
    await database_sync_to_async(tenant_services.api_key_revoke)(key=key)
    await _assert_cut_off(communicator, tenant_a)


async def test_user_in_two_workspaces_keeps_the_other_one(viewer_a, tenant_a, tenant_b):
    await database_sync_to_async(tenant_services.membership_set)(user=viewer_a, tenant=tenant_b, role=Role.VIEWER)
    communicator = await _open_jwt(viewer_a)

    @database_sync_to_async
    def leave_a():
        viewer_a.memberships.filter(tenant=tenant_a).update(is_active=False)
        viewer_a.memberships.get(tenant=tenant_a).save()  # a save, as the services and the admin do

    await leave_a()
    await asyncio.sleep(0.3)
    await emit_in(tenant_a, "in_a")
    await emit_in(tenant_b, "in_b")
    event = await communicator.receive_json_from(timeout=5)
    assert event["action"] == "in_b"
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


async def test_events_reach_the_socket_while_the_sync_thread_is_busy(admin_a, tenant_a):
    """Forwarding an event needs no database: a slow database call elsewhere in the process
    (which holds Channels' one sync thread) must not hold up every socket's live events."""
    from asgiref.sync import sync_to_async
    from channels.layers import get_channel_layer

    from audit.services import tenant_group

    token = await database_sync_to_async(lambda: str(AccessToken.for_user(admin_a)))()
    communicator, connected, _ = await connect(f"/ws?token={token}")
    assert connected
    release = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(release.wait)())  # the sync thread, held
    try:
        await get_channel_layer().group_send(
            tenant_group(tenant_a.pk),
            {"type": "event.forward", "tenant_id": tenant_a.pk, "event": {"type": "backup_progress", "progress": 40}},
        )
        event = await communicator.receive_json_from(timeout=5)
        assert event == {"type": "backup_progress", "progress": 40}
        assert not busy.done()
    finally:
        release.set()
        await busy
    await communicator.disconnect()
