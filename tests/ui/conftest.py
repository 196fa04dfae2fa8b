"""A live console for browser tests: the ASGI server (uvicorn, HTTP and WebSockets, static
files served) and a real Celery worker on the test's PostgreSQL database and Redis, and
Debian's chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import cleanup_pg, pg_server_row, pg_source_db  # noqa: F401  (fixtures for the tests here)
from tests.support.live_asgi import start_asgi, stop
from tests.support.workers import purge_queues, start_celery_worker

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def console_server(django_db_setup) -> Iterator[str]:
    """``http://127.0.0.1:<port>``: uvicorn serving the platform (admin, static, /ws)."""
    proc, port = start_asgi(env={"SERVE_STATIC": "1"})
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture
def console_worker(django_db_setup) -> Iterator[subprocess.Popen]:
    """A real Celery worker on the test database and this run's Redis."""
    purge_queues()
    proc = start_celery_worker("console-test")
    yield proc
    stop(proc)


@pytest.fixture
def browser_as(chromium, console_server):
    """``browser_as(user, viewport=DESKTOP)`` -> a Playwright page signed in as ``user`` (a
    session made by Django's test client, whose cookie the browser carries); with
    ``signed_in=False`` a fresh browser that signs in through the login form itself."""
    from django.test import Client

    contexts = []

    def open_page(user, viewport=DESKTOP, *, signed_in=True):
        context = chromium.new_context(viewport=viewport, base_url=console_server)
        if signed_in:
            client = Client()
            client.force_login(user)
            context.add_cookies(
                [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": console_server}]
            )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path


def psql(database: str, query: str) -> str:
    if not shutil.which("psql"):
        pytest.skip("psql is absent")
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-Atc", query],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
