"""Pagination building blocks: each facade's paginator only decides its parameter names
and its response shape."""

from __future__ import annotations

import math
from typing import Any

from rest_framework.pagination import BasePagination

from backupplatform.counting import cached_count
from backupplatform.errors import FieldError, ValidationFailed
from backupplatform.ids import parse_int


def int_param(request: Any, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return default
    value = parse_int(raw)
    if value is None:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ValidationFailed(
            details={name: [FieldError(f"A whole number is required, got {shown!r}.", "type_error.integer")]},
            location="query",
        )
    if value < minimum:
        raise ValidationFailed(
            details={name: [FieldError(f"Must be at least {minimum}.", "value_error.number.not_ge")]}, location="query"
        )
    if maximum is not None and value > maximum:
        raise ValidationFailed(
            details={name: [FieldError(f"Must be at most {maximum}.", "value_error.number.not_le")]}, location="query"
        )
    return value


class PagePagination(BasePagination):
    """``page`` + a size parameter; a page past the end is an empty list, not an error."""

    size_param = "per_page"
    default_size = 20
    max_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        self.page = int_param(request, "page", 1, minimum=1)
        self.size = int_param(request, self.size_param, self.default_size, minimum=1, maximum=self.max_size)
        self.total = (
            cached_count(queryset) if hasattr(queryset, "count") and not isinstance(queryset, list) else len(queryset)
        )
        self.pages = max(1, math.ceil(self.total / self.size)) if self.total else 0
        start = (self.page - 1) * self.size
        if start >= self.total:  # past the end; also keeps huge pages out of SQL's OFFSET
            return []
        return list(queryset[start : start + self.size])


class LimitOffsetPagination(BasePagination):
    """``limit`` + ``offset`` (db-backup-platform.md "List Backups")."""

    default_limit = 100
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self.limit = int_param(request, "limit", self.default_limit, minimum=1, maximum=self.max_limit)
        self.offset = int_param(request, "offset", 0, minimum=0)
        self.total = cached_count(queryset) if not isinstance(queryset, list) else len(queryset)
        if self.offset >= self.total:  # past the end; also keeps huge offsets out of SQL's OFFSET
            return []
        return list(queryset[self.offset : self.offset + self.limit])
