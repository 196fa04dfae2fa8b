"""Exact list totals without a ``COUNT(*)`` on every request.

The documented list shapes carry a total (``total``, ``pagination.total``), and counting a
large tenant's rows on every page costs more than the page itself. A count is therefore
cached under the SQL of the count query, with the model's *generation*, a number that every
write to the model's table moves on: model ``save``/``delete`` (signals) and the queryset
``update``/``delete``/``bulk_create`` of the counted models (``GenerationQuerySet``). A total
is thus exact after any write made through the ORM, and costs one cache read otherwise.
"""

from __future__ import annotations

import hashlib
import logging

from django.core.cache import cache
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

logger = logging.getLogger(__name__)

COUNT_TTL = 3600  # a total not read for an hour is recounted anyway


def _generation_key(model: type[models.Model]) -> str:
    return f"count-gen:{model._meta.label_lower}"


def generation(model: type[models.Model]) -> int:
    return cache.get(_generation_key(model), 0)


def bump(model: type[models.Model]) -> None:
    """Invalidate every cached total of ``model`` (now, and again when the transaction ends,
    so a count taken by another request in between is not kept)."""
    key = _generation_key(model)

    def incr() -> None:
        try:
            cache.incr(key)
        except ValueError:  # first write since the cache was emptied
            cache.add(key, 1, timeout=None)

    incr()
    transaction.on_commit(incr)


def cached_count(queryset: models.QuerySet) -> int:
    """``queryset.count()``, from the cache while nothing was written to its table."""
    model = queryset.model
    if not getattr(model, "counted", False):
        return queryset.count()
    try:
        # The rows counted, without the columns, joins and order a page adds: cheaper to
        # compile than the whole query, and the same key for every page of one list.
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
    except Exception:  # an empty result set (``.none()``) has no SQL
        return queryset.count()
    digest = hashlib.sha256(f"{sql}|{params!r}".encode()).hexdigest()[:32]
    key, generation_key = f"count:{model._meta.label_lower}:{digest}", _generation_key(model)
    found = cache.get_many([key, generation_key])  # one round trip
    current = found.get(generation_key, 0)
    cached = found.get(key)
    if cached is not None and cached[0] == current:
        return cached[1]
    total = queryset.count()
    cache.set(key, (current, total), timeout=COUNT_TTL)
    return total


class GenerationQuerySet(models.QuerySet):
    """Bulk writes of a counted model move its generation too (they send no signals)."""

    def _written(self) -> None:
        if getattr(self.model, "counted", False):
            bump(self.model)

    def update(self, **kwargs):
        rows = super().update(**kwargs)
        self._written()
        return rows

    def delete(self):
        result = super().delete()
        self._written()
        return result

    def bulk_create(self, objs, *args, **kwargs):
        created = super().bulk_create(objs, *args, **kwargs)
        self._written()
        return created


def _on_write(sender, **kwargs) -> None:
    if getattr(sender, "counted", False):
        bump(sender)


post_save.connect(_on_write, dispatch_uid="counting-save")
post_delete.connect(_on_write, dispatch_uid="counting-delete")
