"""Pure helpers of the Acronis client: URL, header and error-body parsing (no I/O)."""

from __future__ import annotations

import email.utils
import math
import time
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

MAX_DETAIL_CHARS = 500


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date).

    Returns ``None`` when absent or unparseable, never a negative number.
    """
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def parse_error_body(body: Any) -> tuple[int | str | None, str | None, str | None]:
    """``(code, domain, message)`` from an Acronis error body.

    Section 10 documents ``{"error": {"code", "message", "domain", ...}}``; task manager
    and alert errors put ``code``/``domain``/``message`` at the top level; the token
    endpoint may answer the OAuth2 shape ``{"error": "invalid_client",
    "error_description": ...}``. ``code`` may be an int or a string.
    """
    if not isinstance(body, Mapping):
        return None, None, None
    err = body.get("error")
    if isinstance(err, str):
        return err, None, as_text(body.get("error_description") or body.get("message"))
    src: Mapping[str, Any] = err if isinstance(err, Mapping) else body
    code = src.get("code")
    if isinstance(code, bool) or not isinstance(code, int | str):
        code = None
    domain = as_text(src.get("domain"))
    message = as_text(src.get("message") or src.get("reason") or src.get("error_description"))
    if message is None:
        details = src.get("details")
        if isinstance(details, Mapping):
            message = as_text(details.get("info"))
    return code, domain, message


def normalize_base_url(base_url: str) -> str:
    """Data-center URL without trailing slash or ``/api`` suffix; ``ValueError`` if unusable.

    Every path in the spec starts with ``/api/``; the seed's own example configuration
    stores ``https://ecs.evolumia.cloud/api/``, so both spellings must work. httpx
    percent-encodes a space inside a host name and raises its own ``InvalidURL`` (not a
    ``ValueError``) for control characters, so both are refused here, before httpx sees
    them. Credentials, a query or a fragment in the URL would be sent (or logged) with
    every call: refused too.
    """
    url = (base_url or "").strip()
    if not url:
        raise ValueError("Acronis base_url is required")
    if any(unicodedata.category(ch)[0] in "CZ" for ch in url):
        raise ValueError("Acronis base_url must not contain spaces or control characters")
    url = url.rstrip("/")
    if url.lower().endswith("/api"):
        url = url[: -len("/api")]
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ValueError(f"Acronis base_url is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("Acronis base_url must be an http(s) URL with a host")
    if parsed.userinfo or parsed.query or parsed.fragment:
        raise ValueError("Acronis base_url must not contain credentials, a query or a fragment")
    return url


def format_rfc3339(value: datetime) -> str:
    """``2024-05-01T00:00:00Z``; naive datetimes are taken as UTC.

    Truncated to whole seconds: with ``gt()`` that can only re-include activities of the
    same second (callers deduplicate by ``idString``), never skip one.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def same_guid(a: Any, b: Any) -> bool:
    """Case-insensitive GUID equality (section 0: GUID case is not consistent)."""
    return isinstance(a, str) and isinstance(b, str) and a.strip().lower() == b.strip().lower()


def as_text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def truncate(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)
