"""``/metrics`` in the Prometheus exposition format, computed from the database at scrape time.

A custom collector runs a few aggregate queries per scrape, so the numbers are the same
whichever process answers and however many workers run (per-process counters would each
see a slice). It is protected by ``METRICS_TOKEN`` (``Authorization: Bearer <token>``); with
no token set the endpoint is off (404). The histograms describe the backups the platform
still holds (retention deletes old ones, which Prometheus sees as a counter reset).
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from audit.models import Delivery, NotificationChannel, Webhook
from backups.models import Backup, Operation

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 86400)
BYTES_BUCKETS = tuple(2**n for n in (20, 24, 27, 30, 33, 37, 40))  # 1 MiB .. 1 TiB
# Celery on Redis keeps one list per priority step ("celery", "celery\x06\x163", ...).
PRIORITY_SEP = "\x06\x16"


def _histograms(rows, buckets, *, value_key: str, sum_key: str, name: str, doc: str, seconds: bool):
    family = HistogramMetricFamily(name, doc, labels=["tenant"])
    for row in rows:
        counts = [(str(float(b)), row[f"le_{i}"]) for i, b in enumerate(buckets)]
        counts.append(("+Inf", row[value_key]))
        total = row[sum_key] or 0
        if seconds and isinstance(total, timedelta):
            total = total.total_seconds()
        family.add_metric([row["tenant__slug"]], counts, float(total))
    return family


def celery_queue_length() -> int | None:
    """Messages waiting in Celery's default queue (every priority), or ``None`` if the broker
    is not Redis or cannot be read."""
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        names = ["celery", *(f"celery{PRIORITY_SEP}{p}" for p in range(1, 10))]
        with client.pipeline() as pipe:
            for name in names:
                pipe.llen(name)
            return sum(pipe.execute())
    except redis.RedisError:
        logger.warning("could not read the Celery queue length", exc_info=True)
        return None


class PlatformCollector:
    """Backups, operations, deliveries and the queue, read from the database per scrape."""

    def collect(self):

        backups = GaugeMetricFamily(
            "backupplatform_backups", "Backups held, by workspace and status", labels=["tenant", "status"]
        )
        for row in Backup.objects.values("tenant__slug", "status").annotate(n=Count("id")).order_by():
            backups.add_metric([row["tenant__slug"], row["status"]], row["n"])
        yield backups

        done = Backup.objects.filter(status="completed", started_at__isnull=False, completed_at__isnull=False)
        timed = done.annotate(
            duration=ExpressionWrapper(F("completed_at") - F("started_at"), output_field=DurationField())
        )
        rows = (
            timed.values("tenant__slug")
            .annotate(
                n=Count("id"),
                total=Sum("duration"),
                **{
                    f"le_{i}": Count("id", filter=Q(duration__lte=timedelta(seconds=b)))
                    for i, b in enumerate(DURATION_BUCKETS)
                },
            )
            .order_by()
        )
        yield _histograms(
            rows,
            DURATION_BUCKETS,
            value_key="n",
            sum_key="total",
            seconds=True,
            name="backupplatform_backup_duration_seconds",
            doc="Duration of completed backups held",
        )
        rows = (
            done.values("tenant__slug")
            .annotate(
                n=Count("id"),
                total=Sum("stored_bytes"),
                **{f"le_{i}": Count("id", filter=Q(stored_bytes__lte=b)) for i, b in enumerate(BYTES_BUCKETS)},
            )
            .order_by()
        )
        yield _histograms(
            rows,
            BYTES_BUCKETS,
            value_key="n",
            sum_key="total",
            seconds=False,
            name="backupplatform_backup_stored_bytes",
            doc="Stored size of completed backups held",
        )

        last = GaugeMetricFamily(
            "backupplatform_job_last_success_timestamp_seconds",
            "When each backup job last completed a backup (Unix time): alert on time() minus this (RPO)",
            labels=["tenant", "job_id", "job"],
        )
        for row in (
            Backup.objects.filter(status="completed", job__isnull=False)
            .values("tenant__slug", "job_id", "job__name")
            .annotate(at=Max("completed_at"))
            .order_by()
        ):
            last.add_metric([row["tenant__slug"], str(row["job_id"]), row["job__name"]], row["at"].timestamp())
        yield last

        running = GaugeMetricFamily(
            "backupplatform_operations_active",
            "Operations pending or running, by workspace, kind and status",
            labels=["tenant", "kind", "status"],
        )
        for row in (
            Operation.objects.filter(status__in=["pending", "running"])
            .values("tenant__slug", "kind", "status")
            .annotate(n=Count("id"))
            .order_by()
        ):
            running.add_metric([row["tenant__slug"], row["kind"], row["status"]], row["n"])
        yield running

        sent = GaugeMetricFamily(
            "backupplatform_notification_deliveries",
            "Notification and webhook deliveries recorded, by workspace and status",
            labels=["tenant", "status"],
        )
        for row in Delivery.objects.values("tenant__slug", "status").annotate(n=Count("id")).order_by():
            sent.add_metric([row["tenant__slug"], row["status"]], row["n"])
        yield sent

        failing = GaugeMetricFamily(
            "backupplatform_notification_destinations_failing",
            "Channels and webhooks flagged as failing",
            labels=["tenant", "kind"],
        )
        for kind, model in (("channel", NotificationChannel), ("webhook", Webhook)):
            for row in (
                model.objects.filter(failing_since__isnull=False)
                .values("tenant__slug")
                .annotate(n=Count("id"))
                .order_by()
            ):
                failing.add_metric([row["tenant__slug"], kind], row["n"])
        yield failing

        depth = celery_queue_length()
        if depth is not None:
            queue = GaugeMetricFamily(
                "backupplatform_celery_queue_length", "Tasks waiting for a worker", labels=["queue"]
            )
            queue.add_metric(["celery"], depth)
            yield queue


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = getattr(settings, "METRICS_TOKEN", "") or ""
    if not token:
        return HttpResponse("Metrics are off: set METRICS_TOKEN.\n", status=404, content_type="text/plain")
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
