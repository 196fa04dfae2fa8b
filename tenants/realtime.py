"""Telling open WebSockets that a caller's access changed.

A socket joins its tenants' groups when it connects. When a membership, a user, an API key
or a tenant is removed, deactivated or revoked, the sockets of that principal (or tenant)
are told after the change commits; each socket then re-checks what it may still see,
leaves the groups it lost, and closes when nothing is left (``tenants.consumers``).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

ACCESS_CHANGED = "access.changed"


def user_group(user_id: int) -> str:
    return f"principal-user-{user_id}"


def api_key_group(key_id: int) -> str:
    return f"principal-key-{key_id}"


def tenant_access_group(tenant_id: int) -> str:
    return f"tenant-{tenant_id}-access"


def announce_access_change(*groups: str) -> None:
    """After commit, ask the sockets in ``groups`` to re-check their access."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for group in groups:
            try:
                async_to_sync(layer.group_send)(group, {"type": ACCESS_CHANGED})
            except Exception:  # a socket that cannot be told is closed at its next check
                logger.warning("could not tell %s that access changed", group, exc_info=True)

    transaction.on_commit(send)
