"""Beat dispatches due jobs from ``next_run_at`` (schedules/beat.py): each due time once,
whatever the number of jobs and however many dispatchers run at the same moment."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from schedules import services
from schedules.beat import dispatch_due_jobs
from schedules.models import BackupJob


def _jobs(tenant, app, storage, count: int, *, cron="*/5 * * * *") -> list[BackupJob]:
    job = services.job_create(
        tenant=tenant, name="base", application=app, storage=storage, schedule_type="custom", cron_expression=cron
    )
    rows = [
        BackupJob(
            tenant=tenant,
            name=f"job-{n}",
            public_id=f"job-{n}",
            cron_expression=cron,
            schedule_type="custom",
            server=None,
            database_name="",
            enabled=True,
        )
        for n in range(count - 1)
    ]
    BackupJob.objects.bulk_create(rows)
    return [job, *BackupJob.objects.filter(name__startswith="job-")]


@pytest.mark.django_db
def test_due_jobs_are_sent_once_and_move_to_their_next_run(
    tenant_a, app_a, storage_a, django_capture_on_commit_callbacks
):
    job = services.job_create(
        tenant=tenant_a,
        name="nightly",
        application=app_a,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 2 * * *",
        timezone="Europe/Paris",
    )
    off = services.job_create(
        tenant=tenant_a,
        name="off",
        application=None,
        storage=storage_a,
        schedule_type="custom",
        cron_expression="0 2 * * *",
        enabled=False,
        source_path=str(app_a.sources.get().path),
    )
    now = timezone.now()
    # Down for three days: three run times were missed; one run is sent, for the first.
    missed = now - timedelta(days=3)
    BackupJob.objects.filter(pk__in=[job.pk, off.pk]).update(next_run_at=missed)
    sent = []
    with django_capture_on_commit_callbacks(execute=True):  # runs are sent once the dispatch commits
        assert dispatch_due_jobs(now=now, send=lambda *a: sent.append(a)) == [(job.pk, missed)]
    assert [(job_id, due) for job_id, due, _ in sent] == [(job.pk, missed)]
    job.refresh_from_db()
    assert job.next_run_at > now and job.next_run_at - now <= timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert dispatch_due_jobs(now=now, send=lambda *a: sent.append(a)) == []  # nothing due twice
    assert len(sent) == 1


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_never_send_a_due_time_twice(tenant_a, app_a, storage_a):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent dispatchers need row locks (PostgreSQL)")
    jobs = _jobs(tenant_a, app_a, storage_a, 300)
    due = timezone.now() - timedelta(seconds=1)
    BackupJob.objects.filter(pk__in=[j.pk for j in jobs]).update(next_run_at=due)
    sent: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(4)  # three dispatchers and this thread

    def dispatcher():
        start.wait()
        try:
            for _ in range(5):
                dispatch_due_jobs(
                    limit=50, send=lambda job_id, *_: (lock.acquire(), sent.append(job_id), lock.release())
                )
        finally:
            connections.close_all()

    threads = [threading.Thread(target=dispatcher) for _ in range(3)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join()
    assert sorted(sent) == sorted(j.pk for j in jobs)  # every job once, none twice
    assert not BackupJob.objects.filter(next_run_at__lte=due).exists()
