"""Debian's chromium driven by Playwright (headless, never a downloaded browser); the tests
that need it are skipped, saying why, where it is absent."""

from __future__ import annotations

import os

import pytest

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def chromium(monkeypatch):
    if not os.path.exists(CHROMIUM):
        print(f"\nbrowser tests skipped: {CHROMIUM} is absent (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the test's own ORM calls
    # between browser steps are plain synchronous code (for this test only).
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()
        # ORM calls made while Playwright's loop was active opened a connection of their own
        # (another async context); close it so the test database can be dropped at the end.
        from django.db import connections

        connections.close_all()
