"""Read queries about operations that the platform's own health depends on.

``operations_stuck_pending`` finds work that was queued but that nothing picks up: the
message was lost (the broker restarted without persistence, the web process could not
reach it after commit), or no worker consumes the queue. ``/health/`` reports them; a
status or metrics page can reuse the same query.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants.models import Tenant

from .models import Operation, OperationStatus


def pending_grace() -> timedelta:
    """How long an operation may wait in the queue while the workers are idle."""
    return timedelta(seconds=getattr(settings, "OPERATION_PENDING_GRACE", 300))


def pending_limit() -> timedelta:
    """How long an operation may wait at all: longer than any task may run (its hard time
    limit) plus the grace, so even a queue full of the longest tasks does not explain it."""
    return timedelta(seconds=getattr(settings, "CELERY_TASK_TIME_LIMIT", 6 * 3600)) + pending_grace()


def operations_stuck_pending(*, tenant: Tenant | None = None, now: datetime | None = None) -> QuerySet[Operation]:
    """Operations ``pending`` for far longer than the queue explains, oldest first.

    A wait is explained while the workers are busy: some operation is running on a live
    worker (its heartbeat is fresh), so the pending one may simply be next in line. An
    operation is stuck when it has been pending for more than ``OPERATION_PENDING_GRACE``
    (default 5 minutes) while no operation runs on a live worker (idle or dead workers, so
    its message was lost or nobody consumes the queue), or for longer than the longest a
    task may run plus that grace (``pending_limit``), whatever else is happening.
    """
    now = now or timezone.now()
    qs = Operation.objects.filter(status=OperationStatus.PENDING)
    if tenant is not None:
        qs = qs.filter(tenant=tenant)
    alive_after = now - timedelta(seconds=getattr(settings, "OPERATION_HEARTBEAT_TIMEOUT", 60))
    busy = Operation.objects.filter(status=OperationStatus.RUNNING, heartbeat_at__gte=alive_after).exists()
    stuck = Q(created_at__lt=now - pending_limit())
    if not busy:
        stuck |= Q(created_at__lt=now - pending_grace())
    # A backup handed back while its storage is down waits for the task's own retry (up to
    # BACKUP_TASK_RETRY_BACKOFF_MAX); it is stuck only once that wait is long over.
    retry_wait = timedelta(seconds=getattr(settings, "BACKUP_TASK_RETRY_BACKOFF_MAX", 1800)) + pending_grace()
    waiting = Q(step="waiting_for_storage", heartbeat_at__gte=now - retry_wait)
    return qs.filter(stuck).exclude(waiting).select_related("tenant").order_by("created_at", "id")
