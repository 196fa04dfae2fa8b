"""HTTP client for the Acronis Cyber Protect Cloud API (``spec/acronis-cloud-api.md``).

This package speaks HTTP only: no Django, no ORM. ``acronis/services.py`` maps the raw
upstream dicts returned here into our models.

- ``endpoints.py``: :class:`AcronisClient`, the calls the integration makes.
- ``core.py``: one logical call: token, guard, send, one retry on 401.
- ``tokens.py``: OAuth2 tokens in the shared cache, single-flight, customer-scoped.
- ``retry.py``: the tenacity retry policy (capped attempts, exponential backoff with
  jitter floored by ``Retry-After``, within a deadline).
- ``guard.py``: per-tenant circuit breaker and rate-limit backoff shared by all workers.
- ``transport.py``: one HTTP exchange and its errors; ``paging.py``: cursors.

Secrets: the client secret and tokens are never logged and never put in exception
text. Upstream calls are logged at DEBUG with method, path (no query) and status.
"""

from __future__ import annotations

from acronis.client.core import CacheLike
from acronis.client.endpoints import AcronisClient
from acronis.client.util import (
    format_rfc3339,
    normalize_base_url,
    parse_error_body,
    parse_retry_after,
    same_guid,
)

__all__ = [
    "AcronisClient",
    "CacheLike",
    "format_rfc3339",
    "normalize_base_url",
    "parse_error_body",
    "parse_retry_after",
    "same_guid",
]
