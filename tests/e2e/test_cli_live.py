"""A management command started beside ``make run`` joins that instance: without REDIS_URL or
DATABASE_URL it uses what the running instance recorded in ``var/run.env``, so a CLI backup's
progress appears live on the instance's WebSocket."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

from tests.faults.conftest import free_port, wait_for
from tests.support.browser import CHROMIUM
from tests.support.live_asgi import start_runner

from .conftest import PG, needs_pg

ROOT = Path(__file__).resolve().parents[2]


def _post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, method="POST", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@needs_pg
@pytest.mark.slow
def test_a_cli_backup_beside_make_run_shows_live_on_its_socket_and_in_the_browser(request, tmp_path, pg_source_db):
    var = tmp_path / "var"
    port = free_port()
    # The instance: SQLite and its own embedded Redis in ``var`` (the ``make run`` defaults).
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    }
    env.update(PLATFORM_VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    log = tmp_path / "run.log"
    runner = start_runner(port, env, log, "--redis-port", str(free_port()))
    try:
        wait_for(
            lambda: "serving http" in log.read_text() and (var / "run.env").exists(),
            timeout=240,
            what="make run serving",
        )
        recorded = (var / "run.env").read_text()
        redis_url = re.search(r"^REDIS_URL=(\S+)$", recorded, re.M).group(1)
        assert f"embedded Redis at {redis_url}" in log.read_text()
        assert oct((var / "run.env").stat().st_mode & 0o777) == "0o600"

        def serving() -> bool:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health/", timeout=2).close()
            except urllib.error.HTTPError:
                return True  # answering (503 while beat or the worker still start)
            except OSError:
                return False
            return True

        wait_for(serving, timeout=60, interval=0.5, what="the web server answering")
        password = re.search(r"Password: (\S+)", log.read_text()).group(1)
        token = _post_json(f"http://127.0.0.1:{port}/api/v1/auth/login", {"username": "admin", "password": password})[
            "access_token"
        ]

        # Commands beside it: neither REDIS_URL nor DATABASE_URL set.
        cli_env = dict(env)
        setup = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                "from backups.models import Server; from tenants.models import Tenant; "
                f"s = Server.objects.create(tenant=Tenant.objects.get(slug='demo'), name='pg', type='postgresql', "
                f"host='{PG['host']}', port={PG['port']}, credentials={{'username': '{PG['user']}', 'password': ''}}); "
                "print('SERVER', s.pk)",
            ],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert setup.returncode == 0, setup.stderr
        server_id = re.search(r"SERVER (\d+)", setup.stdout).group(1)

        async def scenario() -> tuple[list[dict], subprocess.CompletedProcess]:
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={token}") as ws:
                cli = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "manage.py",
                    "backup",
                    "--tenant",
                    "demo",
                    "--server",
                    server_id,
                    "--database",
                    pg_source_db,
                    cwd=ROOT,
                    env=cli_env,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                events: list[dict] = []
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    event = json.loads(await asyncio.wait_for(ws.recv(), 120))
                    events.append(event)
                    if event.get("type") in ("backup_completed", "backup_failed"):
                        break
                out, err = await cli.communicate()
                return events, subprocess.CompletedProcess(cli, cli.returncode, out.decode(), err.decode())

        events, cli = asyncio.run(scenario())
        assert cli.returncode == 0, cli.stderr
        backup_id = int(re.search(r"Backup (\d+) completed", cli.stdout).group(1))
        types = [e["type"] for e in events]
        assert types[-1] == "backup_completed" and events[-1]["backup_id"] == backup_id, types
        assert "backup_started" in types and "backup_progress" in types

        # And in the operators' console, where chromium is installed.
        if os.path.exists(CHROMIUM):
            _watch_a_cli_backup_in_the_browser(
                request.getfixturevalue("chromium"), port, password, cli_env, server_id, pg_source_db
            )
        else:
            print(f"\nthe browser part skipped: {CHROMIUM} is absent")
    finally:
        runner.terminate()
        try:
            assert runner.wait(60) == 0, log.read_text()[-3000:]
        finally:
            if runner.poll() is None:
                runner.kill()
    assert not (var / "run.env").exists(), "make run removes its record when it stops"


def _watch_a_cli_backup_in_the_browser(browser, port, password, cli_env, server_id, database):
    """An admin watching the overview sees the CLI's backup run (a progress bar that reaches
    100 %) and a completion toast, without a reload."""
    page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=f"http://127.0.0.1:{port}")
    page.set_default_timeout(60_000)
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#running-list")
    page.wait_for_function("window.consoleLive && window.consoleLive.connected")
    watched = subprocess.Popen(
        [sys.executable, "manage.py", "backup", "--tenant", "demo", "--server", server_id, "--database", database],
        cwd=ROOT,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    page.locator(".toast-success", has_text="completed").wait_for(timeout=120_000)
    out, err = watched.communicate(timeout=120)
    assert watched.returncode == 0, err
    second = int(re.search(r"Backup (\d+) completed", out).group(1))
    panel = page.locator(f'#running-list .op-panel:has-text("of backup {second}")')
    assert panel.get_attribute("data-status") == "completed" and panel.get_attribute("data-progress") == "100"
    seen = page.evaluate("window.consoleLive.log")
    assert any(e.get("type") == "backup_progress" and e.get("backup_id") == second for e in seen)
    assert page.url.endswith("/admin/")  # never reloaded
    page.close()


def test_the_record_of_a_stopped_instance_is_ignored(tmp_path):
    from backupplatform.runner import remove_run_env, write_run_env
    from backupplatform.settings.base import running_instance_env

    alive = write_run_env(tmp_path, {"REDIS_URL": "redis://127.0.0.1:1234/0", "DATABASE_URL": ""}, os.getpid())
    assert running_instance_env(tmp_path) == {"RUNNER_PID": str(os.getpid()), "REDIS_URL": "redis://127.0.0.1:1234/0"}
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    write_run_env(tmp_path, {"REDIS_URL": "redis://127.0.0.1:1234/0"}, int(gone.stdout))
    assert running_instance_env(tmp_path) == {}
    remove_run_env(tmp_path, os.getpid())  # not this process's record any more: left alone
    assert alive.exists()
    remove_run_env(tmp_path, int(gone.stdout))
    assert not alive.exists()


def test_transfer_text_in_human_units():
    from backups.management.commands._runner import transfer_text

    assert (
        transfer_text(bytes_done=12_000_000, bytes_total=40_000_000, throughput_bps=5_100_000, eta_seconds=6)
        == "12 MB / 40 MB  5.1 MB/s  ETA 00:00:06"
    )
    assert transfer_text(bytes_done=1_100_000, bytes_total=None, throughput_bps=None, eta_seconds=None) == "1.1 MB"
