"""Retention engine: examples a user recognises, then invariants over random histories."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from schedules.retention import BackupInfo, RetentionPlan, RetentionRules, plan_retention

NOW = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)


def daily_history(days: int, *, end: datetime, status: str = "completed", verified=False):
    """One backup per day at 02:00 UTC, ids 0 (oldest) .. days-1 (newest)."""
    last = end.replace(hour=2, minute=0, second=0, microsecond=0)
    return [BackupInfo(i, last - timedelta(days=days - 1 - i), status, verified=verified) for i in range(days)]


# --------------------------------------------------------------------------- #
# Examples
# --------------------------------------------------------------------------- #


def test_seven_daily_four_weekly_twelve_monthly_over_a_year_of_daily_backups():
    # db-backup-platform.md "Retention Policies": "Keep last 7 daily, 4 weekly, 12 monthly"
    end = datetime(2023, 12, 31, 12, 0, tzinfo=UTC)  # a Sunday
    backups = daily_history(365, end=end)
    plan = plan_retention(backups, RetentionRules(keep_daily=7, keep_weekly=4, keep_monthly=12), end)
    by_id = {b.id: b.created_at.date().isoformat() for b in backups}
    kept_days = sorted(by_id[i] for i in plan.keep)
    # 7 days (Dec 25-31) + 3 more Sundays (Dec 24, 17, 10) + 11 more month ends
    assert len(plan.keep) == 21
    assert kept_days[-10:] == [
        "2023-12-10", "2023-12-17", "2023-12-24", "2023-12-25", "2023-12-26",
        "2023-12-27", "2023-12-28", "2023-12-29", "2023-12-30", "2023-12-31",
    ]  # fmt: skip
    assert kept_days[:11] == [
        "2023-01-31", "2023-02-28", "2023-03-31", "2023-04-30", "2023-05-31", "2023-06-30",
        "2023-07-31", "2023-08-31", "2023-09-30", "2023-10-31", "2023-11-30",
    ]  # fmt: skip
    newest = backups[-1].id
    assert plan.reasons(newest) == ["daily:2023-12-31", "weekly:2023-W52", "monthly:2023-12"]
    assert len(plan.delete) == 365 - 21
    assert plan.summary() == {
        "total_backups": 365,
        "eligible_for_removal": 344,
        "backups_to_keep": 21,
        "protected_backups": 0,
    }


def test_workspace_policy_with_yearly_keeps_the_last_backup_of_each_year():
    # workspace-backup-api.md "Backup Policy": daily 7, weekly 4, monthly 12, yearly 3
    end = datetime(2024, 6, 30, 12, 0, tzinfo=UTC)
    backups = daily_history(4 * 365, end=end)
    rules = RetentionRules(keep_daily=7, keep_weekly=4, keep_monthly=12, keep_yearly=3)
    plan = plan_retention(backups, rules, end)
    yearly = {backups[i].created_at.date().isoformat(): plan.reasons(i) for i in plan.kept_for("yearly")}
    assert sorted(yearly) == ["2022-12-31", "2023-12-31", "2024-06-30"]
    assert "yearly:2022" in yearly["2022-12-31"]


def test_cleanup_dry_run_keep_last_5_of_12():
    # system-backup-recovery.rst "Cleanup Operations": 12 backups, keep_last_5 -> 7 to remove
    backups = daily_history(12, end=NOW)
    plan = plan_retention(backups, RetentionRules(keep_last_n=5, min_verified_kept=0), NOW)
    assert plan.summary() == {
        "total_backups": 12,
        "eligible_for_removal": 7,
        "backups_to_keep": 5,
        "protected_backups": 0,
    }
    assert plan.delete == [0, 1, 2, 3, 4, 5, 6]  # oldest first
    assert list(plan.keep) == [11, 10, 9, 8, 7]  # newest first
    assert set(plan.delete_reasons.values()) == {"not_retained"}


def test_keep_days_keeps_backups_younger_than_n_days():
    backups = daily_history(10, end=NOW)  # newest 2024-06-30 02:00
    plan = plan_retention(backups, RetentionRules(keep_days=3, min_verified_kept=0), NOW)
    # 06-30, 06-29 and 06-28 02:00 are younger than 72 h at 06-30 12:00; 06-27 02:00 is not
    assert sorted(plan.kept_for("days")) == [7, 8, 9]


def test_api_layer_retention_days_30():
    # api-layer.md backup jobs: "retention_days": 30
    backups = daily_history(90, end=NOW)
    plan = plan_retention(backups, RetentionRules(keep_days=30, min_verified_kept=0), NOW)
    assert len(plan.keep) == 30


def test_no_rule_at_all_keeps_everything_including_failures():
    backups = [
        *daily_history(5, end=NOW),
        BackupInfo("f", NOW - timedelta(days=30), "failed"),
        BackupInfo("c", NOW - timedelta(days=31), "cancelled"),
    ]
    plan = plan_retention(backups, RetentionRules(), NOW)
    assert plan.delete == []
    assert all("no_policy" in reasons for reasons in plan.keep.values())


def test_rules_set_to_zero_delete_everything_not_protected():
    backups = daily_history(5, end=NOW, verified=True)
    zero = RetentionRules(keep_last_n=0, keep_days=0, min_verified_kept=0)
    assert plan_retention(backups, zero, NOW).keep == {}


def test_safety_net_keeps_the_last_verified_backup_when_every_recent_run_failed():
    good = [
        BackupInfo(f"ok-{i}", NOW - timedelta(days=40 - i), "completed", verified=i % 2 == 0) for i in range(5)
    ]  # ok-4 is the newest verified, 36 days old
    failures = [BackupInfo(f"fail-{d}", NOW - timedelta(days=d), "failed") for d in range(1, 36)]
    plan = plan_retention(good + failures, RetentionRules(keep_days=7), NOW)
    assert plan.reasons("ok-4") == ["safety_net"]
    assert not plan.is_kept("ok-3")  # newer than ok-2 but not verified: no net for it
    assert plan.delete == ["ok-0", "ok-1", "ok-2", "ok-3"]
    # every failure since the last success stays visible
    assert all(plan.reasons(b.id) == ["unresolved_failure"] for b in failures)


def test_safety_net_keeps_the_newest_n_verified_backups():
    backups = daily_history(10, end=NOW, verified=True)
    plan = plan_retention(backups, RetentionRules(keep_last_n=0, min_verified_kept=3), NOW)
    assert list(plan.keep) == [9, 8, 7]
    assert plan.kept_for("safety_net") == [9, 8, 7]


def test_without_verified_backups_the_safety_net_protects_nothing():
    backups = daily_history(10, end=NOW, verified=False)
    plan = plan_retention(backups, RetentionRules(keep_days=0), NOW)
    assert plan.keep == {}


def test_failures_older_than_the_newest_success_are_deleted():
    backups = [
        BackupInfo("old-fail", NOW - timedelta(days=3), "failed"),
        BackupInfo("ok", NOW - timedelta(days=2), "completed"),
        BackupInfo("cancel", NOW - timedelta(days=1, hours=1), "cancelled"),
        BackupInfo("new-fail", NOW - timedelta(days=1), "failed"),
        BackupInfo("pinned-fail", NOW - timedelta(days=4), "failed", keep_forever=True),
    ]
    plan = plan_retention(backups, RetentionRules(keep_last_n=1, min_verified_kept=0), NOW)
    assert plan.delete == ["old-fail"]
    assert plan.delete_reasons == {"old-fail": "superseded_failure"}
    assert plan.reasons("cancel") == ["unresolved_failure"]
    assert plan.reasons("new-fail") == ["unresolved_failure"]
    assert plan.reasons("pinned-fail") == ["keep_forever"]
    assert plan.reasons("ok") == ["last_n"]


def test_failures_never_count_as_kept_versions():
    backups = daily_history(3, end=NOW) + [
        BackupInfo(f"f{i}", NOW - timedelta(days=10 + i), "failed") for i in range(5)
    ]
    plan = plan_retention(backups, RetentionRules(keep_last_n=5, min_verified_kept=0), NOW)
    assert sorted(plan.kept_for("last_n")) == [0, 1, 2]
    assert all(not plan.is_kept(f"f{i}") for i in range(5))


def test_running_and_pending_backups_are_never_deleted():
    backups = [
        *daily_history(3, end=NOW),
        BackupInfo("run", NOW - timedelta(days=400), "running"),
        BackupInfo("pend", NOW - timedelta(minutes=1), "pending"),
    ]
    plan = plan_retention(backups, RetentionRules(keep_last_n=0, min_verified_kept=0), NOW)
    assert plan.reasons("run") == ["in_progress"]
    assert plan.reasons("pend") == ["in_progress"]


def test_keep_until_protects_only_until_it_passes():
    # workspace-backup-api.md "Trigger Backup": retention_override.keep_until
    pinned = BackupInfo("pre-deploy", NOW - timedelta(days=100), "completed", keep_until=NOW + timedelta(days=1))
    expired = BackupInfo("expired", NOW - timedelta(days=100), "completed", keep_until=NOW - timedelta(seconds=1))
    forever = BackupInfo("forever", NOW - timedelta(days=3000), "completed", keep_forever=True)
    rules = RetentionRules(keep_last_n=0, min_verified_kept=0)
    plan = plan_retention([pinned, expired, forever], rules, NOW)
    assert plan.reasons("pre-deploy") == ["keep_until"]
    assert plan.reasons("forever") == ["keep_forever"]
    assert plan.delete == ["expired"]
    assert plan.protected == ["pre-deploy", "forever"]
    assert plan.summary()["protected_backups"] == 2
    later = plan_retention([pinned, expired, forever], rules, NOW + timedelta(days=2))
    assert later.delete == ["pre-deploy", "expired"]


def test_periods_are_calendar_periods_in_the_policy_time_zone():
    # 2024-01-31 23:30 UTC is already February 1st in Tokyo
    late = BackupInfo("late", datetime(2024, 1, 31, 23, 30, tzinfo=UTC), "completed")
    early = BackupInfo("early", datetime(2024, 1, 31, 1, 0, tzinfo=UTC), "completed")
    utc_plan = plan_retention([early, late], RetentionRules(keep_monthly=2), NOW)
    assert utc_plan.reasons("late") == ["monthly:2024-01"]
    assert not utc_plan.is_kept("early")  # same January as "late", and older
    tokyo = RetentionRules(keep_monthly=2, timezone="Asia/Tokyo")
    tokyo_plan = plan_retention([early, late], tokyo, NOW)
    assert tokyo_plan.reasons("late") == ["monthly:2024-02"]
    assert tokyo_plan.reasons("early") == ["monthly:2024-01"]


def test_iso_weeks_cross_the_year_boundary():
    monday = BackupInfo("mon", datetime(2024, 12, 30, 2, tzinfo=UTC), "completed")
    sunday = BackupInfo("sun", datetime(2024, 12, 29, 2, tzinfo=UTC), "completed")
    plan = plan_retention([monday, sunday], RetentionRules(keep_weekly=2), NOW)
    assert plan.reasons("mon") == ["weekly:2025-W01"]
    assert plan.reasons("sun") == ["weekly:2024-W52"]


def test_daily_buckets_on_the_25_hour_dst_day_in_berlin():
    # 2024-10-27 lasts 25 hours in Berlin: 00:30 CEST and 23:30 CET are the same day
    first = BackupInfo("first", datetime(2024, 10, 26, 22, 30, tzinfo=UTC), "completed")
    last = BackupInfo("last", datetime(2024, 10, 27, 22, 30, tzinfo=UTC), "completed")
    plan = plan_retention([first, last], RetentionRules(keep_daily=5, timezone="Europe/Berlin"), NOW)
    assert plan.reasons("last") == ["daily:2024-10-27"]
    assert not plan.is_kept("first")


def test_gfs_counts_periods_that_have_a_backup_not_calendar_periods_before_now():
    # a schedule that stopped three months ago still has its last 7 daily backups
    backups = daily_history(30, end=NOW - timedelta(days=90))
    plan = plan_retention(backups, RetentionRules(keep_daily=7), NOW)
    assert sorted(plan.keep) == list(range(23, 30))


def test_backups_in_other_time_zones_are_ordered_by_instant():
    new_york = ZoneInfo("America/New_York")
    # 01:30 EDT (05:30 UTC) happens before 01:10 EST (06:10 UTC) on the fall-back day
    a = BackupInfo("a", datetime(2024, 11, 3, 1, 30, tzinfo=new_york, fold=0), "completed")
    b = BackupInfo("b", datetime(2024, 11, 3, 1, 10, tzinfo=new_york, fold=1), "completed")
    plan = plan_retention([b, a], RetentionRules(keep_last_n=1, min_verified_kept=0), NOW)
    assert list(plan.keep) == ["b"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: BackupInfo(1, datetime(2024, 1, 1), "completed"), "aware"),
        (lambda: BackupInfo(1, NOW, "done"), "unknown backup status"),
        (lambda: BackupInfo(1, NOW, "completed", keep_until=datetime(2025, 1, 1)), "aware"),
        (lambda: RetentionRules(keep_last_n=-1), "keep_last_n"),
        (lambda: RetentionRules(keep_daily=1.5), "keep_daily"),
        (lambda: RetentionRules(min_verified_kept=-1), "min_verified_kept"),
        (lambda: RetentionRules(timezone="Mars/Olympus"), "time zone"),
        (lambda: plan_retention([], RetentionRules(), datetime(2024, 1, 1)), "aware"),
        (
            lambda: plan_retention(
                [BackupInfo(1, NOW, "completed"), BackupInfo(1, NOW, "failed")],
                RetentionRules(),
                NOW,
            ),
            "unique",
        ),
    ],
)
def test_bad_input_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_a_hundred_thousand_backups_are_each_kept_or_deleted_once():
    # How long this takes is measured by bench/schedules.py (--engine-only), not here.
    rng = random.Random(7)
    start = datetime(2013, 1, 1, tzinfo=UTC)
    statuses = ["completed"] * 8 + ["failed", "cancelled"]
    backups = [
        BackupInfo(i, start + timedelta(hours=i), rng.choice(statuses), verified=rng.random() < 0.5)
        for i in range(100_000)
    ]
    rng.shuffle(backups)
    rules = RetentionRules(
        keep_last_n=10,
        keep_days=30,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=12,
        keep_yearly=10,
        timezone="Europe/Berlin",
    )
    now = start + timedelta(hours=100_000)
    plan = plan_retention(backups, rules, now)
    assert set(plan.keep) | set(plan.delete) == set(range(100_000))
    assert not set(plan.keep) & set(plan.delete)
    # The newest ten completed backups and everything of the last 30 days survive.
    completed = sorted((b for b in backups if b.status == "completed"), key=lambda b: b.created_at)
    assert {b.id for b in completed[-10:]} <= set(plan.keep)
    assert {b.id for b in completed if b.created_at >= now - timedelta(days=30)} <= set(plan.keep)
    # One kept backup per year for ten years, at most 10 + 30 days + 7 + 4 + 12 + 10 kept in all.
    assert len(plan.kept_for("yearly")) == 10
    assert len(plan.keep) < 10 + 30 * 24 + 7 + 4 + 12 + 10


# --------------------------------------------------------------------------- #
# Invariants over random histories
# --------------------------------------------------------------------------- #

BASE = datetime(2022, 1, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe"]
STATUSES = ["completed"] * 5 + ["failed", "cancelled", "running", "pending"]
COMPLETED_STATUSES = ["completed"] * 4 + ["failed", "cancelled"]


@st.composite
def histories(draw, *, statuses=STATUSES, unique_times=False, max_size=60):
    """Backups spread over ~3 years, with bursts and equal timestamps."""
    minutes = st.integers(0, 3 * 365 * 24 * 60)
    offsets = draw(
        st.lists(minutes, max_size=max_size, unique=unique_times)
        if unique_times
        else st.lists(st.one_of(minutes, st.sampled_from([0, 60, 1440, 1441])), max_size=max_size)
    )
    backups = []
    for i, offset in enumerate(offsets):
        keep_until = draw(
            st.one_of(
                st.none(),
                st.none(),
                st.integers(-5000, 5000).map(lambda m: NOW + timedelta(minutes=m)),
            )
        )
        backups.append(
            BackupInfo(
                id=i,
                created_at=BASE + timedelta(minutes=offset),
                status=draw(st.sampled_from(statuses)),
                verified=draw(st.booleans()),
                keep_until=keep_until,
                keep_forever=draw(st.integers(0, 19)) == 0,
            )
        )
    return backups


small = st.one_of(st.none(), st.integers(0, 8))
rules_strategy = st.builds(
    RetentionRules,
    keep_last_n=small,
    keep_days=st.one_of(st.none(), st.integers(0, 800)),
    keep_daily=small,
    keep_weekly=small,
    keep_monthly=small,
    keep_yearly=small,
    min_verified_kept=st.integers(0, 3),
    timezone=st.sampled_from(ZONES),
)
nows = st.integers(0, 4 * 365 * 24 * 60).map(lambda m: BASE + timedelta(minutes=m))
SETTINGS = settings(max_examples=100, deadline=None)


def newest_first(backups):
    """The engine's documented order: by instant, ties broken by input order."""
    indexed = sorted(enumerate(backups), key=lambda p: (p[1].created_at, p[0]), reverse=True)
    return [b for _, b in indexed]


def completed_newest_first(backups):
    return [b for b in newest_first(backups) if b.status == "completed"]


def reason_ids(plan: RetentionPlan, reason: str) -> set:
    return set(plan.kept_for(reason))


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_every_backup_is_either_kept_or_deleted(backups, rules, now):
    plan = plan_retention(backups, rules, now)
    ids = [b.id for b in backups]
    assert not set(plan.keep) & set(plan.delete)
    assert set(plan.keep) | set(plan.delete) == set(ids)
    assert len(plan.keep) + len(plan.delete) == len(ids)
    assert all(plan.keep.values())  # every kept backup says why
    assert set(plan.delete_reasons) == set(plan.delete)


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_deletions_are_oldest_first_and_keeps_newest_first(backups, rules, now):
    plan = plan_retention(backups, rules, now)
    by_id = {b.id: b.created_at for b in backups}
    deleted_times = [by_id[i] for i in plan.delete]
    kept_times = [by_id[i] for i in plan.keep]
    assert deleted_times == sorted(deleted_times)
    assert kept_times == sorted(kept_times, reverse=True)


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_protected_and_in_progress_backups_are_never_deleted(backups, rules, now):
    plan = plan_retention(backups, rules, now)
    for backup in backups:
        if backup.status in ("running", "pending"):
            assert plan.is_kept(backup.id)
        if backup.keep_forever or (backup.keep_until is not None and backup.keep_until > now):
            assert plan.is_kept(backup.id)


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_the_newest_verified_backups_always_survive(backups, rules, now):
    plan = plan_retention(backups, rules, now)
    verified = [b for b in completed_newest_first(backups) if b.verified]
    net = verified[: rules.min_verified_kept]
    assert all(plan.is_kept(b.id) for b in net)
    assert reason_ids(plan, "safety_net") == {b.id for b in net}


@SETTINGS
@given(
    backups=histories(),
    failures=st.integers(1, 30),
    rules=rules_strategy,
)
def test_a_run_of_failures_never_takes_the_last_verified_backup(backups, failures, rules):
    assume(rules.min_verified_kept > 0)
    newest = max((b.created_at for b in backups), default=BASE)
    failed = [BackupInfo(f"fail-{i}", newest + timedelta(hours=i + 1), "failed") for i in range(failures)]
    plan = plan_retention(backups + failed, rules, newest + timedelta(days=400))
    verified = [b for b in completed_newest_first(backups) if b.verified]
    if verified:
        assert plan.is_kept(verified[0].id)


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_keep_last_n_keeps_exactly_the_n_newest_completed(backups, rules, now):
    assume(rules.keep_last_n is not None)
    plan = plan_retention(backups, rules, now)
    expected = completed_newest_first(backups)[: rules.keep_last_n]
    assert plan.kept_for("last_n") == [b.id for b in expected]


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_keep_days_keeps_completed_backups_younger_than_n_days(backups, rules, now):
    assume(rules.keep_days is not None)
    plan = plan_retention(backups, rules, now)
    expected = {
        b.id for b in backups if b.status == "completed" and now - b.created_at < timedelta(days=rules.keep_days)
    }
    assert reason_ids(plan, "days") == expected


PERIODS = {
    "daily": ("keep_daily", lambda d: d.strftime("%Y-%m-%d")),
    "weekly": ("keep_weekly", lambda d: "{}-W{:02d}".format(*d.isocalendar()[:2])),
    "monthly": ("keep_monthly", lambda d: d.strftime("%Y-%m")),
    "yearly": ("keep_yearly", lambda d: d.strftime("%Y")),
}


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_gfs_keeps_the_newest_completed_backup_of_each_of_the_latest_periods(backups, rules, now):
    plan = plan_retention(backups, rules, now)
    zone = ZoneInfo(rules.timezone)
    for kind, (attr, period_of) in PERIODS.items():
        limit = getattr(rules, attr) or 0
        newest_of_period: dict[str, BackupInfo] = {}
        for backup in completed_newest_first(backups):
            newest_of_period.setdefault(period_of(backup.created_at.astimezone(zone)), backup)
        latest = sorted(newest_of_period, reverse=True)[:limit]
        expected = {f"{kind}:{period}": newest_of_period[period].id for period in latest}
        found = {
            reason: backup_id
            for backup_id, reasons in plan.keep.items()
            for reason in reasons
            if reason.startswith(kind + ":")
        }
        assert found == expected


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_failures_are_kept_only_while_newer_than_the_newest_success(backups, rules, now):
    assume(rules.has_rules)
    plan = plan_retention(backups, rules, now)
    order = newest_first(backups)
    first_success = next((i for i, b in enumerate(order) if b.status == "completed"), len(order))
    for position, backup in enumerate(order):
        if backup.status not in ("failed", "cancelled"):
            continue
        protected = backup.keep_forever or (backup.keep_until is not None and backup.keep_until > now)
        assert plan.is_kept(backup.id) == (position < first_success or protected)
        assert not {"last_n", "days", "safety_net"} & set(plan.reasons(backup.id))


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_without_rules_nothing_is_deleted(backups, rules, now):
    bare = RetentionRules(min_verified_kept=rules.min_verified_kept, timezone=rules.timezone)
    assert plan_retention(backups, bare, now).delete == []


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_planning_again_on_what_was_kept_deletes_nothing_more(backups, rules, now):
    plan = plan_retention(backups, rules, now)
    kept = [b for b in backups if plan.is_kept(b.id)]
    again = plan_retention(kept, rules, now)
    assert again.delete == []


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows, verified=st.booleans())
def test_a_newer_completed_backup_never_revives_a_deleted_one(backups, rules, now, verified):
    before = plan_retention(backups, rules, now)
    newest = max((b.created_at for b in backups), default=BASE)
    fresh = BackupInfo("fresh", newest + timedelta(minutes=1), "completed", verified=verified)
    after = plan_retention([*backups, fresh], rules, now)
    assert set(before.delete) <= set(after.delete)


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows)
def test_a_newer_failure_changes_nothing_for_existing_backups(backups, rules, now):
    before = plan_retention(backups, rules, now)
    newest = max((b.created_at for b in backups), default=BASE)
    failure = BackupInfo("failure", newest + timedelta(minutes=1), "failed")
    after = plan_retention([*backups, failure], rules, now)
    assert after.delete == before.delete
    assert after.is_kept("failure")


@SETTINGS
@given(backups=histories(), rules=rules_strategy, now=nows, later=st.integers(0, 10**6))
def test_what_is_deleted_today_is_not_kept_tomorrow(backups, rules, now, later):
    today = plan_retention(backups, rules, now)
    tomorrow = plan_retention(backups, rules, now + timedelta(minutes=later))
    assert set(today.delete) <= set(tomorrow.delete)


@SETTINGS
@given(
    backups=histories(),
    rules=rules_strategy,
    now=nows,
    attr=st.sampled_from(["keep_last_n", "keep_days", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly"]),
    more=st.integers(1, 5),
)
def test_a_more_generous_rule_never_deletes_more(backups, rules, now, attr, more):
    assume(getattr(rules, attr) is not None)
    generous = replace(rules, **{attr: getattr(rules, attr) + more})
    assert set(plan_retention(backups, generous, now).delete) <= set(plan_retention(backups, rules, now).delete)


@SETTINGS
@given(backups=histories(unique_times=True), rules=rules_strategy, now=nows, seed=st.integers())
def test_input_order_does_not_matter_when_timestamps_differ(backups, rules, now, seed):
    shuffled = list(backups)
    random.Random(seed).shuffle(shuffled)
    assert plan_retention(shuffled, rules, now) == plan_retention(backups, rules, now)
