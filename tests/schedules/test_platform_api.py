"""db-backup-platform.md "Schedules" and "Retention Policies" over one BackupJob, with beat."""

from __future__ import annotations

from datetime import UTC, datetime
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from schedules.beat import dispatch_due_jobs
from schedules.models import BackupJob, RetentionPolicy

pytestmark = pytest.mark.django_db


def body(**over):
    return {
        "name": "Daily Production Backup",
        "description": "Automated daily backup",
        "database_name": "shop",
        "cron_expression": "0 2 * * *",
        "timezone": "UTC",
        "backup_type": "full",
        "enabled": True,
        "notify_on_success": False,
        "notify_on_failure": True,
        **over,
    }


def test_create_schedule_sets_its_next_run_in_its_timezone(
    api, admin_a, pg_server_a, django_capture_on_commit_callbacks
):
    response = api(admin_a).post(
        "/api/v1/schedules", body(server_id=pg_server_a.pk, timezone="Europe/Paris"), format="json"
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["server_id"] == pg_server_a.pk and data["cron_expression"] == "0 2 * * *"
    job = BackupJob.objects.get(pk=data["id"])
    local = job.next_run_at.astimezone(ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (2, 0) and job.next_run_at > timezone.now()
    sent = []
    BackupJob.objects.filter(pk=job.pk).update(next_run_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        dispatch_due_jobs(send=lambda job_id, due, priority: sent.append((job_id, priority)))
    assert sent == [(job.pk, 5)]
    listing = api(admin_a).get("/api/v1/schedules").json()
    assert isinstance(listing, list) and listing[0]["id"] == job.pk and listing[0]["next_run"].endswith("Z")


def test_disable_update_and_delete_follow_in_the_next_run(api, admin_a, pg_server_a):
    client = api(admin_a)
    job_id = client.post("/api/v1/schedules", body(server_id=pg_server_a.pk), format="json").json()["id"]
    response = client.put(f"/api/v1/schedules/{job_id}", {"enabled": False}, format="json")
    assert response.status_code == 200 and response.json()["enabled"] is False
    assert response.json()["next_run"] is None
    assert BackupJob.objects.get(pk=job_id).next_run_at is None  # nothing for beat to dispatch
    client.put(
        f"/api/v1/schedules/{job_id}",
        {"enabled": True, "cron_expression": "15 */6 * * 1-5", "timezone": "Asia/Tokyo"},
        format="json",
    )
    local = BackupJob.objects.get(pk=job_id).next_run_at.astimezone(ZoneInfo("Asia/Tokyo"))
    assert local.minute == 15 and local.hour % 6 == 0 and local.isoweekday() <= 5
    assert client.delete(f"/api/v1/schedules/{job_id}").status_code == 204
    assert not BackupJob.objects.filter(pk=job_id).exists()
    assert client.get(f"/api/v1/schedules/{job_id}").status_code == 404


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Spring forward 2024-03-10: 02:30 does not exist in New York; the run is at 03:00 EDT.
        (datetime(2024, 3, 9, 12, 0, tzinfo=UTC), "2024-03-10T07:00:00Z"),
        (datetime(2024, 3, 10, 12, 0, tzinfo=UTC), "2024-03-11T06:30:00Z"),
        # Before the change 02:30 EST = 07:30 UTC.
        (datetime(2024, 3, 8, 12, 0, tzinfo=UTC), "2024-03-09T07:30:00Z"),
        # Fall back 2024-11-03: 02:30 EST = 07:30 UTC (the day before it was 06:30 UTC, EDT).
        (datetime(2024, 11, 2, 0, 0, tzinfo=UTC), "2024-11-02T06:30:00Z"),
        (datetime(2024, 11, 2, 12, 0, tzinfo=UTC), "2024-11-03T07:30:00Z"),
    ],
)
def test_next_run_through_the_api_is_dst_correct(api, admin_a, pg_server_a, now, expected):
    job_id = (
        api(admin_a)
        .post(
            "/api/v1/schedules",
            body(server_id=pg_server_a.pk, cron_expression="30 2 * * *", timezone="America/New_York"),
            format="json",
        )
        .json()["id"]
    )
    with mock.patch("schedules.selectors.timezone.now", return_value=now):
        data = api(admin_a).get(f"/api/v1/schedules/{job_id}").json()
    assert data["next_run"] == expected


def test_fall_back_overlap_runs_once_at_the_first_occurrence(api, admin_a, pg_server_a):
    job_id = (
        api(admin_a)
        .post(
            "/api/v1/schedules",
            body(server_id=pg_server_a.pk, cron_expression="30 1 * * *", timezone="America/New_York"),
            format="json",
        )
        .json()["id"]
    )
    with mock.patch("schedules.selectors.timezone.now", return_value=datetime(2024, 11, 3, 5, 0, tzinfo=UTC)):
        first = api(admin_a).get(f"/api/v1/schedules/{job_id}").json()["next_run"]
    with mock.patch("schedules.selectors.timezone.now", return_value=datetime(2024, 11, 3, 5, 31, tzinfo=UTC)):
        after = api(admin_a).get(f"/api/v1/schedules/{job_id}").json()["next_run"]
    assert first == "2024-11-03T05:30:00Z"  # 01:30 EDT
    assert after == "2024-11-04T06:30:00Z"  # not 01:30 EST again


@pytest.mark.parametrize(
    "bad",
    [
        {"cron_expression": "61 * * * *"},
        {"timezone": "Mars/Olympus"},
        {"server_id": "1"},
        {"enabled": "yes"},
        {"cron_expression": "0 2 30 2 *"},
        {"backup_type": "incremental"},
        {"surprise": 1},
        {"server_id": 99999},
    ],
)
def test_bad_schedule_input_is_422_and_writes_nothing(api, admin_a, pg_server_a, bad):
    response = api(admin_a).post("/api/v1/schedules", {**body(server_id=pg_server_a.pk), **bad}, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["detail"][0]["loc"][0] == "body"
    assert not BackupJob.objects.exists()


def test_retention_policies_crud_and_delete_in_use_is_409(api, admin_a, pg_server_a):
    client = api(admin_a)
    response = client.post(
        "/api/v1/retention-policies",
        {
            "name": "Long-term Retention",
            "description": "x",
            "keep_days": 2555,
            "keep_daily": 30,
            "keep_weekly": 52,
            "keep_monthly": 84,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    policy_id = response.json()["id"]
    assert client.get("/api/v1/retention-policies").json()[0]["keep_monthly"] == 84
    job_id = client.post(
        "/api/v1/schedules", body(server_id=pg_server_a.pk, retention_policy_id=policy_id), format="json"
    ).json()["id"]
    refused = client.delete(f"/api/v1/retention-policies/{policy_id}")
    assert refused.status_code == 409 and refused.json()["code"] == "POLICY_IN_USE"
    client.put(f"/api/v1/schedules/{job_id}", {"retention_policy_id": None}, format="json")
    assert (
        client.put(f"/api/v1/retention-policies/{policy_id}", {"keep_daily": 7}, format="json").json()["keep_daily"]
        == 7
    )
    assert client.delete(f"/api/v1/retention-policies/{policy_id}").status_code == 204
    assert not RetentionPolicy.objects.exists()
