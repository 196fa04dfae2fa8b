"""Webhook deliveries: the JSON body and its HMAC-SHA256 signature.

Each delivery is ``{"id", "type", "timestamp", "tenant", "data"}``. Every attempt carries

    X-Webhook-Id: <the delivery's id, the same on every retry: use it to drop duplicates>
    X-Webhook-Event: <type>
    X-Webhook-Timestamp: <Unix seconds of this attempt>
    X-Webhook-Signature: t=<the same timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">

with the webhook's secret as the key. A receiver recomputes the HMAC over the raw body,
compares in constant time and refuses timestamps older than its replay window (README,
"Notifications, webhooks, commands and metrics").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets as _secrets
import time
from typing import Any

from .notices import Notice

SIGNATURE_HEADER = "X-Webhook-Signature"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + _secrets.token_urlsafe(32)


def new_delivery_id() -> str:
    return "evt_" + _secrets.token_hex(12)


def body_for(notice: Notice, delivery_id: str) -> dict[str, Any]:
    """The body of a webhook delivery (stored on the delivery, sent as it is on every attempt)."""
    data = {
        **notice.data,
        "title": notice.title,
        "message": notice.text,
        "level": notice.level,
        "error": notice.error or None,
        "link": notice.link or None,
        "facts": notice.facts,
    }
    return {
        "id": delivery_id,
        "type": notice.event_type,
        "timestamp": notice.timestamp,
        "tenant": notice.tenant,
        "data": data,
    }


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def sign(secret: str, raw_body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers of one attempt: id, event, timestamp and signature."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return {"X-Webhook-Timestamp": str(timestamp), SIGNATURE_HEADER: f"t={timestamp},v1={digest}"}


def verify(
    secret: str, raw_body: bytes, signature_header: str, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """The receiver's check (the README's snippet): signature matches, timestamp is fresh."""
    try:
        fields = dict(part.split("=", 1) for part in signature_header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))
