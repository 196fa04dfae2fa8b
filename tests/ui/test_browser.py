"""The console in a real browser (Debian's chromium through Playwright) against a live
server, a real Celery worker and PostgreSQL: the overview's numbers, a backup started from a
server page moving to 100 % without a reload, the restore wizard masking a column into a new
database, and a tenant's staff seeing only its tenant, live events included. Screenshots land
in docs/screenshots/ (1400x900 and a 390x844 phone)."""

from __future__ import annotations

import contextlib
import re
import secrets

import psycopg
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from psycopg import sql

from backups.services.backups import backup_start
from tests.e2e.conftest import PG, needs_pg, pg_drop

from .conftest import DESKTOP, PHONE, psql, screenshot
from .seed import ALPHA_ERROR, BRAVO_ERROR, seed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, needs_pg]

RED = "rgb(198, 40, 40)"

WIDE = """(limit) => Array.from(document.querySelectorAll('body *'))
    .filter(el => el.getBoundingClientRect().right > limit + 1 && el.offsetParent !== null)
    .slice(0, 8).map(el => el.tagName + '#' + el.id + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))"""


def assert_fits(page, width: int) -> None:
    """No sideways scrolling at this width (the offenders are named when there is)."""
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, (scroll, page.evaluate(WIDE, width))


@pytest.fixture
def staff_a(admin_a):
    admin_a.is_staff = True
    admin_a.save()
    return admin_a


@pytest.fixture
def seeded(tenant_a, tenant_b):
    return seed(tenant_a, tenant_b, pg_host=PG["host"], pg_port=PG["port"])


@pytest.fixture
def shop_db():
    """A real database to back up: customers with e-mail addresses, and enough rows in a
    second table that the backup takes a moment."""
    name = f"bp_ui_{secrets.token_hex(4)}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with psycopg.connect(dbname=name, **PG) as conn:
        conn.execute("""
            CREATE TABLE customers (id serial PRIMARY KEY, email text NOT NULL, city text);
            INSERT INTO customers (email, city) SELECT 'user' || n || '@example.com', 'Town ' || (n % 7)
              FROM generate_series(1, 500) n;
            CREATE TABLE events (id bigserial PRIMARY KEY, payload text);
            INSERT INTO events (payload) SELECT repeat(md5(n::text), 8) FROM generate_series(1, 120000) n;
        """)
    yield name
    pg_drop(name)


@pytest.fixture
def cleanup_dbs():
    names: list[str] = []
    yield names
    for name in names:
        pg_drop(name)


def test_overview_shows_the_seeded_numbers_the_failure_and_the_stale_application(seeded, browser_as, superuser):
    from tests.conftest import PASSWORD

    page = browser_as(superuser, signed_in=False)
    page.goto("/")  # the site's root leads to the overview, through the login form
    page.fill("#id_username", superuser.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    assert page.locator("#card-protected").is_visible()
    page.select_option("#tenant", "alpha")
    page.wait_for_url(re.compile(r"tenant=alpha"))
    assert page.inner_text("#card-protected .big").replace(" ", "") == "2/3"
    assert page.inner_text("#card-24h .n-ok") == "2" and page.inner_text("#card-24h .n-failed") == "1"
    assert page.inner_text("#card-stale .big") == "1"
    failures = page.inner_text("#failures")
    assert "ledger_failed" in failures and "does not exist" in failures and BRAVO_ERROR not in failures
    stale = page.locator('tr[data-rpo="shop"]')
    assert "stale" in stale.inner_text() and "3 days ago" in stale.inner_text()
    assert stale.locator("td").first.evaluate("el => getComputedStyle(el).color") == RED
    ok = page.locator('tr[data-rpo="alpha-pg / orders"]')
    assert ok.locator("td").first.evaluate("el => getComputedStyle(el).color") != RED
    # Fits 1400 px without scrolling sideways.
    assert_fits(page, DESKTOP["width"])
    page.wait_for_function("window.consoleLive && window.consoleLive.connected")
    screenshot(page, "overview")

    phone = browser_as(superuser, viewport=PHONE)
    phone.goto("/admin/?tenant=alpha")
    assert_fits(phone, PHONE["width"])
    screenshot(phone, "overview-phone")

    lists = browser_as(superuser)
    for url in (
        "/admin/backups/backup/",
        "/admin/backups/operation/",
        "/admin/schedules/backupjob/",
        "/admin/backups/storage/",
    ):
        lists.goto(url)
        assert_fits(lists, DESKTOP["width"])
        assert lists.evaluate(
            "(() => { const r = document.querySelector('#changelist .results');"
            " return !r || r.scrollWidth <= r.clientWidth; })()"
        ), url  # no inner scrolling
    lists.goto("/admin/backups/backup/")
    assert "3.4 MB" in lists.inner_text("#result_list")
    assert "does not exist" in lists.inner_text("#result_list")
    failed = lists.locator(f'#result_list [data-backup-status="{seeded.failed_backup.pk}"]')
    assert failed.inner_text() == "Failed" and failed.evaluate("el => getComputedStyle(el).color") == RED
    screenshot(lists, "backups-list")


def test_backup_from_a_server_page_moves_live_to_100_percent_without_a_reload(
    seeded, shop_db, console_worker, browser_as, superuser
):
    page = browser_as(superuser)
    page.goto(f"/admin/backups/server/{seeded.pg.pk}/change/")
    page.click("#backup-now-link")
    # The picker lists the server's real databases.
    options = page.locator("#id_database option").all_inner_texts()
    assert any(o.startswith(shop_db) for o in options) and any(o.startswith("postgres") for o in options)
    page.select_option("#id_database", shop_db)
    page.wait_for_function("window.consoleLive && window.consoleLive.connected")
    page.evaluate("""() => {
        window.__sameDocument = true;
        window.__seen = [];
        new MutationObserver(() => {
            const p = document.querySelector('#live-panel .op-panel');
            if (p) window.__seen.push(Number(p.dataset.progress));
        }).observe(document.getElementById('live-panel'), {attributes: true, subtree: true, childList: true});
    }""")
    page.click("#backup-now")
    panel = page.locator("#live-panel .op-panel")
    panel.wait_for()
    # Catch it running for the screenshot (only the picture's moment depends on it).
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_selector('#live-panel .op-panel[data-status="in_progress"]', timeout=5000)
    screenshot(page, "backup-running")
    page.wait_for_selector('#live-panel .op-panel[data-status="completed"][data-progress="100"]', timeout=90_000)
    assert page.evaluate("window.__sameDocument") is True  # no reload, no navigation
    seen = page.evaluate("window.__seen")
    assert seen[-1] == 100 and seen == sorted(seen), seen  # never backwards
    toast = page.locator(".toast-success", has_text="completed")
    toast.wait_for()
    assert shop_db in toast.inner_text()
    assert "MB" in panel.inner_text()  # bytes in human units
    screenshot(page, "backup-completed")
    phone = browser_as(superuser, viewport=PHONE)
    phone.goto(page.url)
    assert_fits(phone, PHONE["width"])
    screenshot(phone, "backup-now-phone")


def test_restore_wizard_into_a_new_database_with_a_masked_column(
    seeded, shop_db, console_worker, cleanup_dbs, browser_as, superuser
):
    from backups.models import Backup

    op = backup_start(tenant=seeded.pg.tenant, server=seeded.pg, database_name=shop_db)
    target = f"{shop_db}_masked"
    cleanup_dbs.append(target)
    page = browser_as(superuser)
    page.goto(f"/admin/backups/backup/{op.backup_id}/change/")
    backup = Backup.objects.get(pk=op.backup_id)
    for _ in range(600):
        backup.refresh_from_db()
        if backup.status in ("completed", "failed"):
            break
        page.wait_for_timeout(100)
    assert backup.status == "completed", backup.error_message
    page.reload()
    page.click("#restore-link")
    timeline = page.inner_text(".timeline")
    assert backup.name in timeline
    page.fill("#id_target_database", target)
    page.fill("#id_mask_column_0", "email")
    page.select_option("#id_mask_rule_0", "hash")
    page.check('.table-subset input[value="public.customers"]')
    page.check("#id_confirm")
    summary = page.inner_text("#restore-summary")
    assert target in summary and "email" in summary and "Only table public.customers." in summary
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "restore-wizard")
    phone = browser_as(superuser, viewport=PHONE)
    phone.goto(page.url)
    assert_fits(phone, PHONE["width"])
    screenshot(phone, "restore-wizard-phone")

    page.click("#restore-submit")
    page.wait_for_selector('#live-panel .op-panel[data-status="completed"][data-progress="100"]', timeout=120_000)
    page.locator(".toast-success", has_text=f"Restore of {backup.name}: completed").wait_for()
    page.locator("#live-panel").scroll_into_view_if_needed()
    screenshot(page, "restore-completed")

    # Download gives the decrypted content: the pg_dump archive itself.
    download = page.request.get(f"/admin/console/backups/{backup.pk}/download/")
    assert download.ok and download.body()[:5] == b"PGDMP"
    assert download.headers["content-disposition"].endswith('.dump"')

    assert psql(target, "SELECT count(*) FROM customers") == "500"
    assert psql(target, "SELECT to_regclass('events') IS NULL") == "t"  # not ticked, not restored
    emails = psql(target, "SELECT email FROM customers ORDER BY id LIMIT 3").splitlines()
    assert emails and not any(e.endswith("@example.com") for e in emails), emails
    assert psql(target, "SELECT city FROM customers WHERE id = 1") == "Town 1"  # other columns untouched
    assert psql(shop_db, "SELECT email FROM customers WHERE id = 1") == "user1@example.com"  # source untouched


def test_restore_wizard_shows_service_errors_next_to_the_field_in_words(seeded, browser_as, superuser):
    page = browser_as(superuser)
    page.goto(f"/admin/console/backups/{seeded.ok_backup.pk}/restore/")
    page.fill("#id_target_database", "orders")  # the source itself, without overwrite
    page.fill("#id_mask_column_0", "email")  # a column without a rule
    page.check("#id_confirm")
    page.click("#restore-submit")
    page.wait_for_selector(".live-error")
    errors = page.inner_text("#restore-wizard")
    assert "Choose how to mask email." in errors
    assert "{'" not in errors and "['" not in errors


def test_tenant_staff_sees_only_its_tenant_numbers_and_live_events(
    seeded, staff_a, tenant_a, tenant_b, console_worker, browser_as
):
    page = browser_as(staff_a)
    page.goto("/admin/")
    assert page.locator("#tenant-picker").count() == 0
    assert page.inner_text("#card-protected .big").replace(" ", "") == "2/3"
    body = page.inner_text("#content")
    assert "ledger_failed" in body and BRAVO_ERROR not in body and "bravo" not in body
    page.wait_for_function("window.consoleLive && window.consoleLive.connected")
    # Work in both tenants: alpha's failure reaches alice's page, bravo's does not.
    from backups.models import Server

    bravo_server = Server.objects.get(tenant=tenant_b)
    bravo_op = backup_start(tenant=tenant_b, server=bravo_server, database_name="bravo_missing_db")
    alpha_op = backup_start(tenant=tenant_a, server=seeded.pg, database_name="alpha_missing_db")
    page.locator(".toast-error", has_text="alpha_missing_db").wait_for(timeout=90_000)
    from backups.models import Backup

    for _ in range(300):
        if Backup.objects.get(pk=bravo_op.backup_id).status == "failed":
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(1000)  # anything for bravo would have arrived by now
    log = page.evaluate("window.consoleLive.log")
    backup_ids = {e.get("backup_id") for e in log}
    assert alpha_op.backup_id in backup_ids and bravo_op.backup_id not in backup_ids
    assert "bravo" not in str(log) and "bravo" not in page.inner_text("#toasts")
    assert ALPHA_ERROR.split(":")[0] in page.inner_text("#failures")


def test_storage_form_shows_the_chosen_types_fields_and_the_job_form_its_next_runs(seeded, browser_as, superuser):
    page = browser_as(superuser)
    page.goto("/admin/backups/storage/add/")
    page.select_option("#id_type", "s3")
    assert page.is_visible("#id_bucket") and page.is_visible("#id_secret_access_key")
    assert not page.is_visible("#id_host") and not page.is_visible("#id_account_name")
    page.select_option("#id_type", "sftp")
    assert page.is_visible("#id_host") and page.is_visible("#id_private_key") and not page.is_visible("#id_bucket")
    page.select_option("#id_type", "s3")
    assert_fits(page, DESKTOP["width"])
    screenshot(page, "storage-form")

    from schedules.models import BackupJob

    job = BackupJob.objects.get(name="orders-daily")
    page.goto(f"/admin/schedules/backupjob/{job.pk}/change/")
    page.select_option("#id_schedule_type", "weekly")
    page.fill("#id_schedule_time", "03:15")
    page.check('input[name="days_of_week"][value="2"]')
    page.check('input[name="days_of_week"][value="4"]')
    page.wait_for_function("document.getElementById('schedule-preview').innerText.includes('cron: 15 3 * * 2,4')")
    runs = page.inner_text("#schedule-preview").splitlines()[1:]
    assert len(runs) == 5 and all(r[:3] in ("Tue", "Thu") and "03:15" in r for r in runs), runs
    page.locator("fieldset.job-schedule").scroll_into_view_if_needed()
    assert_fits(page, DESKTOP["width"])
    screenshot(page, "job-form")


def test_the_channel_form_shows_the_chosen_types_fields_and_saves_them(seeded, browser_as, superuser, tenant_a):
    from audit.models import NotificationChannel

    page = browser_as(superuser)
    page.goto("/admin/audit/notificationchannel/add/")
    assert page.inner_text(".breadcrumbs").startswith("Overview")  # the admin's home is the overview
    page.select_option("#id_tenant", str(tenant_a.pk))
    page.fill("#id_name", "on-call mail")
    page.select_option("#id_type", "email")
    assert page.is_visible("#id_config_to") and page.is_visible("#id_config_smtp_password")
    assert not page.is_visible("#id_config_webhook_url") and not page.is_visible("#id_config_bot_token")
    page.select_option("#id_type", "slack")
    assert page.is_visible("#id_config_webhook_url") and page.is_visible("#id_config_channel")
    assert not page.is_visible("#id_config_to") and not page.is_visible("#id_clear_secrets")
    page.select_option("#id_type", "email")
    page.fill("#id_config_to", "ops@example.com\noncall@example.com")
    page.check('input[name="event_types"][value="backup.failed"]')
    assert_fits(page, DESKTOP["width"])
    page.locator("fieldset.channel-config").scroll_into_view_if_needed()
    screenshot(page, "channel-form")
    phone = browser_as(superuser, viewport=PHONE)
    phone.goto("/admin/audit/notificationchannel/add/")
    assert_fits(phone, PHONE["width"])
    page.click('input[name="_save"]')
    page.wait_for_url("**/admin/audit/notificationchannel/")
    channel = NotificationChannel.objects.get(name="on-call mail")
    assert channel.config["to"] == ["ops@example.com", "oncall@example.com"]
    assert channel.event_types == ["backup.failed"]
