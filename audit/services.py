"""The event bus: one ``emit()`` for every create, update, delete and action.

It writes the audit row (secrets removed) and, once the transaction commits, sends the
event to the tenant's channel-layer group so WebSocket consumers only have to listen. Events
that people or other systems subscribe to (``audit.events``) are also handed, after commit,
to ``audit.deliveries.event_committed``: the ``notification`` socket event, then notification
channels and webhooks through Celery. This is the one place where that hook lives.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from backupplatform.isotime import utc_iso

from . import context
from .events import event_type_for
from .models import AuditEvent

logger = logging.getLogger(__name__)

HIDDEN = "[HIDDEN]"
# Keys are matched by whole words (``db_password``, ``clientSecret``, ``ssh-key``), never by
# substrings: ``passed``, ``passthrough`` or ``keyboard`` are ordinary fields.
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
        "authorization",
        "cookie",
        "privatekey",
        "apikey",
        "dsn",
    }
)
# ``<word> key`` pairs that hold key material (``ssh_key``, ``api_key``, ``secret_access_key``).
KEY_QUALIFIERS = frozenset(
    {
        "ssh",
        "private",
        "api",
        "access",
        "secret",
        "signing",
        "master",
        "encryption",
        "data",
        "client",
        "shared",
        "webhook",
        "license",
    }
)
# A last word that makes the key *about* a secret rather than the secret itself:
# ``credential_fields`` lists names, ``token_type`` says "Bearer", ``password_changed`` is a flag.
META_WORDS = frozenset(
    {
        "fields",
        "field",
        "names",
        "name",
        "changed",
        "set",
        "count",
        "type",
        "id",
        "ids",
        "length",
        "hint",
        "expires",
        "expiry",
        "at",
        "required",
        "policy",
        "present",
        "prefix",
    }
)


def key_words(key: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(str(key))]


def is_secret_key(key: str) -> bool:
    """Whether a value under ``key`` must never be shown (see the word lists above)."""
    words = key_words(key)
    if not words:
        return False
    last = words[-1]
    if last in META_WORDS:
        return False
    if any(w in SECRET_WORDS for w in words):
        return True
    if last == "key" and (len(words) == 1 or words[-2] in KEY_QUALIFIERS):
        return True
    return words[-2:] in (["webhook", "url"], ["connection", "string"])


def scrub(value: Any) -> Any:
    """Return ``value`` with every secret key's value replaced by ``[HIDDEN]``."""
    if isinstance(value, dict):
        return {k: (HIDDEN if is_secret_key(k) and v not in (None, "") else scrub(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def tenant_group(tenant_id: int, stream: str = "updates") -> str:
    """Channel-layer group of a tenant's stream (CONVENTIONS.md "Channels")."""
    return f"tenant-{tenant_id}-{stream}"


def publish(*, tenant_id: int, event: dict[str, Any], stream: str = "updates") -> None:
    """Send ``event`` to the tenant's group after the current transaction commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(
                tenant_group(tenant_id, stream), {"type": "event.forward", "tenant_id": tenant_id, "event": event}
            )
        except Exception:  # a dashboard that cannot be reached must not fail the action
            logger.warning("could not publish %s event to tenant %s", event.get("type"), tenant_id, exc_info=True)

    transaction.on_commit(send)


def stored_user(actor: Any) -> Any:
    """``actor`` as a row's ``created_by``: the user itself, or ``None`` for work nobody signed
    in started (beat, the CLI without a user, an anonymous actor)."""
    return actor if getattr(actor, "pk", None) else None


def emit(
    *,
    action: str,
    tenant: Any = None,
    resource_type: str = "",
    resource_id: Any = "",
    details: dict[str, Any] | None = None,
    actor: Any = None,
) -> AuditEvent:
    """Record ``action`` (e.g. ``backup_create``) and fan it out to the tenant's listeners."""
    ctx = context.current()
    user = actor if actor is not None else ctx.user
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    api_key = ctx.api_key if actor is None and user is None else None
    clean = scrub(details or {})
    # Round-trip through the JSON encoder so dates and decimals are stored as text.
    clean = json.loads(json.dumps(clean, cls=DjangoJSONEncoder))
    event = AuditEvent.objects.create(
        tenant=tenant,
        actor=user,
        api_key=api_key,
        actor_name=getattr(user, "username", "") if user else (f"apikey:{api_key.name}" if api_key else ctx.source),
        auth_method=ctx.auth_method,
        action=action,
        resource_type=resource_type,
        resource_id="" if resource_id is None else str(resource_id),
        ip_address=ctx.ip,
        source=ctx.source,
        details=clean,
    )
    if tenant is not None:
        publish(
            tenant_id=tenant.pk,
            event={
                "type": "audit",
                "id": event.pk,
                "action": action,
                "resource_type": resource_type,
                "resource_id": event.resource_id,
                "username": event.actor_name,
                "details": clean,
                "timestamp": utc_iso(event.created_at, micro=True),
            },
        )
        event_type = event_type_for(action, clean, event.resource_id)
        if event_type is not None:
            from .deliveries import event_committed

            transaction.on_commit(lambda: event_committed(event_id=event.pk, event_type=event_type))
    return event
