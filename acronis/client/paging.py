"""Cursor pagination (section 9)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from acronis.errors import AcronisDataError

logger = logging.getLogger(__name__)

# ``get(path, params)`` returns one decoded page.
GetJson = Callable[[str, Mapping[str, Any]], Any]


def iter_pages(get: GetJson, path: str, params: Mapping[str, Any] | None = None) -> Iterator[dict]:
    """Yield each page body of a cursor-paged list.

    The first request sends ``params``; later ones only ``after`` (the cursor encodes the
    original query) and ``limit`` if it was given. Stops when ``after`` is missing, a page
    has no items, or a cursor repeats (a server bug that would loop forever).
    """
    query: dict[str, Any] = dict(params or {})
    limit = query.get("limit")
    seen: set[str] = set()
    while True:
        body = get(path, query)
        items = _items(path, body)
        yield body
        after = _next_cursor(body) if items else None
        if after is None:
            return
        if after in seen:
            logger.warning("Acronis GET %s returned a cursor it already returned; stopping", path)
            return
        seen.add(after)
        query = {"after": after}
        if limit is not None:
            query["limit"] = limit


def _items(path: str, body: Any) -> list:
    if not isinstance(body, dict):
        raise AcronisDataError(technical=f"GET {path}: page is not a JSON object")
    items = body.get("items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise AcronisDataError(technical=f"GET {path}: 'items' is not a list")
    return items


def _next_cursor(body: dict) -> str | None:
    paging = body.get("paging")
    cursors = paging.get("cursors") if isinstance(paging, dict) else None
    after = cursors.get("after") if isinstance(cursors, dict) else None
    return after if isinstance(after, str) and after else None
