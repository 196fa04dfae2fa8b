"""Notification channels in the admin: the fields each type needs (no JSON to type), secrets
written once and never shown, errors in words next to their field."""

from __future__ import annotations

import pytest

from audit.models import NotificationChannel

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"


def channel_form(tenant, **fields):
    return {"tenant": tenant.pk, "name": "ops", "type": "slack", "is_enabled": "on", "min_level": "info", **fields}


def test_a_slack_channel_is_set_up_with_its_own_fields_and_its_webhook_never_shown_again(admin_client, tenant_a):
    page = admin_client.get("/admin/audit/notificationchannel/add/").content.decode()
    for field in (
        "id_config_webhook_url",
        "id_config_channel",
        "id_config_to",
        "id_config_bot_token",
        "id_event_types_0",
    ):
        assert field in page
    assert 'name="config_update"' not in page and "channel-type-fields" in page
    response = admin_client.post(
        "/admin/audit/notificationchannel/add/",
        channel_form(
            tenant_a,
            config_webhook_url=HOOK,
            config_channel="#backups",
            config_to="not-for-slack@example.com",  # another type's field: not taken
            event_types=["backup.failed", "backup.completed"],
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = NotificationChannel.objects.get(name="ops")
    assert channel.config == {"webhook_url": HOOK, "channel": "#backups"}
    assert channel.event_types == ["backup.completed", "backup.failed"]

    change = admin_client.get(f"/admin/audit/notificationchannel/{channel.pk}/change/").content.decode()
    assert "XXXXSECRETXXXX" not in change and "#backups" in change and "Stored. Stored once saved" in change
    # The webhook left blank is kept; the channel emptied is removed.
    response = admin_client.post(
        f"/admin/audit/notificationchannel/{channel.pk}/change/",
        channel_form(tenant_a, config_username="Backups", event_types=[]),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel.refresh_from_db()
    assert channel.config == {"webhook_url": HOOK, "username": "Backups"} and channel.event_types == []


def test_channel_errors_are_words_next_to_their_field_and_nothing_is_written(admin_client, tenant_a):
    response = admin_client.post(
        "/admin/audit/notificationchannel/add/", channel_form(tenant_a, config_webhook_url="ftp://example.com/x")
    )
    errors = response.context["adminform"].form.errors
    assert "http(s) URL" in errors["config_webhook_url"][0]
    response = admin_client.post("/admin/audit/notificationchannel/add/", channel_form(tenant_a, type="telegram"))
    errors = response.context["adminform"].form.errors
    assert errors["config_bot_token"] == ["This field is required."]
    assert errors["config_chat_id"] == ["This field is required."]
    html = response.content.decode()
    assert "{'" not in html and "{&#x27;" not in html and "config.bot_token" not in html
    assert not NotificationChannel.objects.exists()


def test_an_email_channel_takes_addresses_one_per_line_and_its_password_can_be_cleared(admin_client, tenant_a):
    form = channel_form(
        tenant_a,
        name="mail",
        type="email",
        config_to="ops@example.com\n\noncall@example.com",
        config_smtp_host="127.0.0.1",
        config_smtp_port="2525",
        config_smtp_password="hunter2-smtp",
        config_smtp_security="none",
    )
    response = admin_client.post("/admin/audit/notificationchannel/add/", form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel = NotificationChannel.objects.get(name="mail")
    assert channel.config["to"] == ["ops@example.com", "oncall@example.com"]
    assert channel.config["smtp_port"] == 2525 and channel.config["smtp_password"] == "hunter2-smtp"
    change = admin_client.get(f"/admin/audit/notificationchannel/{channel.pk}/change/").content.decode()
    assert "hunter2-smtp" not in change and "oncall@example.com" in change

    response = admin_client.post(
        f"/admin/audit/notificationchannel/{channel.pk}/change/",
        {**form, "config_smtp_password": "", "clear_secrets": "on"},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    channel.refresh_from_db()
    assert "smtp_password" not in channel.config and channel.config["smtp_host"] == "127.0.0.1"
    bad = admin_client.post(f"/admin/audit/notificationchannel/{channel.pk}/change/", {**form, "config_to": "nobody"})
    assert bad.context["adminform"].form.errors["config_to"] == ["Not a valid e-mail address: 'nobody'."]


def test_tenant_staff_set_up_channels_of_their_tenant_only(client, staff_a, tenant_a, tenant_b):
    client.force_login(staff_a)
    response = client.post("/admin/audit/notificationchannel/add/", channel_form(tenant_b, config_webhook_url=HOOK))
    assert response.status_code == 200 and not NotificationChannel.objects.exists()
    assert "tenant" in response.context["adminform"].form.errors
