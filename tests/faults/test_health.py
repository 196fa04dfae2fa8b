"""``GET /health/``: worker and beat liveness, database and Redis reachability, and
operations pending far longer than the queue explains."""

from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from backups.models import Operation
from backups.operation_selectors import operations_stuck_pending
from backups.services.backups import backup_start
from backups.services.operations import operation_claim
from backups.tasks import reap_operations

from .conftest import needs_pg, wait_for


def _health(client) -> tuple[int, dict]:
    response = client.get("/health/")
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_health_follows_the_worker_and_beat(client, settings, start_worker, start_beat):
    # Heartbeats every second (beat ticks at least every 5 s); the defaults are 10 s and 60 s.
    settings.HEALTH_WORKER_STALE_AFTER = 3
    settings.HEALTH_BEAT_STALE_AFTER = 8
    worker = start_worker(env={"HEALTH_HEARTBEAT_INTERVAL": "1"})
    beat = start_beat(env={"HEALTH_HEARTBEAT_INTERVAL": "1"})
    reap_operations.apply()  # the reaper ran (beat sends it every minute)

    def checks() -> dict:
        return _health(client)[1]["checks"]

    wait_for(
        lambda: checks()["worker"]["status"] == "up" and checks()["beat"]["status"] == "up",
        timeout=60,
        what="worker and beat up",
    )
    status, body = _health(client)
    assert status == 200 and body["status"] == "ok", body
    assert body["checks"]["database"]["status"] == "up" and body["checks"]["redis"]["status"] == "up"
    assert body["checks"]["reaper"]["status"] == "up" and body["checks"]["worker"]["alive"] == 1

    os.kill(worker.pid, signal.SIGKILL)
    wait_for(lambda: checks()["worker"]["status"] == "down", timeout=30, what="the dead worker noticed")
    status, body = _health(client)
    assert status == 503 and body["status"] == "unhealthy"
    assert body["checks"]["worker"]["alive"] == 0 and body["checks"]["worker"]["last_seen_seconds"] > 0

    os.kill(beat.pid, signal.SIGKILL)
    wait_for(lambda: checks()["beat"]["status"] == "down", timeout=30, what="the dead beat noticed")


@pytest.mark.django_db
def test_health_reports_redis_unreachable(client, settings, closed_port):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port}/0"
    status, body = _health(client)
    assert status == 503
    assert body["checks"]["redis"] == {"status": "down", "error": "ConnectionError"}
    assert body["checks"]["database"]["status"] == "up"
    assert body["checks"]["worker"]["status"] == "unknown"


@needs_pg
@pytest.mark.django_db(transaction=True)
def test_health_reports_the_database_unreachable(client, db_faults):
    connection.ensure_connection()
    db_faults.allow_connections(False)
    try:
        db_faults.terminate(connection.connection.info.backend_pid)
        status, body = _health(client)
    finally:
        db_faults.allow_connections(True)
    assert status == 503
    assert body["checks"]["database"]["status"] == "down"
    assert body["checks"]["operations"] == {"status": "unknown"}
    assert _health(client)[1]["checks"]["database"]["status"] == "up"  # back on a fresh connection


def _queued(tenant, server, storage, *, minutes_ago: float) -> Operation:
    op = backup_start(tenant=tenant, server=server, database_name="db", storage=storage, queue=False)
    Operation.objects.filter(pk=op.pk).update(created_at=timezone.now() - timedelta(minutes=minutes_ago))
    return op


@pytest.mark.django_db
def test_operations_pending_longer_than_the_queue_explains(client, tenant_a, pg_server_row, local_storage):
    fresh = _queued(tenant_a, pg_server_row, local_storage, minutes_ago=1)
    stuck = _queued(tenant_a, pg_server_row, local_storage, minutes_ago=10)
    assert list(operations_stuck_pending()) == [stuck]  # nothing runs, nothing started since it was queued
    status, body = _health(client)
    assert status == 503 and body["checks"]["operations"]["stuck_pending"] == 1
    assert body["checks"]["operations"]["oldest_pending_seconds"] >= 600

    # Work running on a live worker explains a wait ...
    running = _queued(tenant_a, pg_server_row, local_storage, minutes_ago=30)
    operation_claim(operation_id=running.pk)
    assert list(operations_stuck_pending()) == []
    # ... unless that worker stopped beating.
    Operation.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert list(operations_stuck_pending()) == [stuck]
    Operation.objects.filter(pk=running.pk).update(heartbeat_at=timezone.now())
    # A wait longer than any task may run is never explained.
    ancient = _queued(tenant_a, pg_server_row, local_storage, minutes_ago=7 * 60)
    assert list(operations_stuck_pending()) == [ancient]
    assert list(operations_stuck_pending(tenant=tenant_a)) == [ancient]
    assert fresh not in operations_stuck_pending()


def test_a_backup_waiting_for_its_storage_is_not_stuck_until_its_retry_is_overdue(
    client, settings, tenant_a, pg_server_row, local_storage
):
    settings.BACKUP_TASK_RETRY_BACKOFF_MAX = 1800
    waiting = _queued(tenant_a, pg_server_row, local_storage, minutes_ago=20)
    Operation.objects.filter(pk=waiting.pk).update(
        step="waiting_for_storage", heartbeat_at=timezone.now() - timedelta(minutes=10)
    )
    assert list(operations_stuck_pending()) == []  # the task's own retry is due within 30 min
    Operation.objects.filter(pk=waiting.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=40))
    assert list(operations_stuck_pending()) == [waiting]
