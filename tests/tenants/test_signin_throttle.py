"""The admin's sign-in form refuses guessing: after a few wrong passwords for a user name from
one address, every try is refused for a while, the right password too; other people are not."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def sign_in(username: str, password: str, address: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=address).post("/admin/login/?next=/admin/", {"username": username, "password": password})


def test_wrong_passwords_lock_the_form_for_that_user_from_that_address(settings, superuser):
    settings.SIGNIN_MAX_FAILURES = 3
    for _ in range(3):
        assert sign_in("root", "guess").status_code == 200  # the form again, with its error
    locked = sign_in("root", PASSWORD)
    assert locked.status_code == 429
    assert "Too many failed sign-ins from here." in locked.content.decode()
    assert "_auth_user_id" not in locked.wsgi_request.session
    assert sign_in("root", PASSWORD, address="198.51.100.9").status_code == 302  # another address
    assert sign_in("someone-else", "guess").status_code == 200  # another user name from here


def test_the_lock_ends_with_its_window(settings, superuser):
    from django.core.cache import cache

    settings.SIGNIN_MAX_FAILURES = 2
    sign_in("root", "guess")
    sign_in("root", "guess")
    assert sign_in("root", PASSWORD).status_code == 429
    cache.delete("signin-failures:203.0.113.7:root")  # as when SIGNIN_FAILURE_WINDOW has passed
    assert sign_in("root", PASSWORD).status_code == 302


def test_one_address_guessing_many_user_names_is_locked_too(settings, superuser):
    settings.SIGNIN_MAX_FAILURES_PER_ADDRESS = 4
    for n in range(4):
        sign_in(f"user{n}", "guess")
    assert sign_in("root", PASSWORD).status_code == 429


def test_every_console_page_links_to_two_factor_setup(superuser):
    client = Client()
    client.force_login(superuser)
    page = client.get("/admin/backups/backup/").content.decode()
    assert 'href="/admin/two-factor/setup/"' in page and "Two-factor sign-in" in page
    assert client.get("/admin/two-factor/setup/").status_code == 200
