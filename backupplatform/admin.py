"""Admin of the audit app (the audit log, notification channels, webhooks, deliveries).

Registered here, in the project's top layer, because the admin's tenant scoping lives in the
tenants app, which sits above audit (audit imports no other app of ours).
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages

from audit import channels as channel_types
from audit import notifications
from audit.events import DEFAULT_CHANNEL_EVENTS, EVENT_TYPES
from audit.models import AuditEvent, Delivery, NotificationChannel, Webhook
from backupplatform.admin_forms import KeyValueField, LinesField, ServiceAdminMixin, ServiceModelForm
from tenants.scoping import TenantScopedAdminMixin


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "tenant",
        "actor_name",
        "action",
        "resource_type",
        "resource_id",
        "ip_address",
        "source",
    ]
    list_filter = ["action", "resource_type", "source", "tenant"]
    search_fields = ["action", "actor_name", "resource_id"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]
    list_select_related = ["tenant"]

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- notification channels, webhooks, deliveries ---------------------------------------------------


# Labels and hints of the configuration keys (audit/channels.py ``CONFIG_KEYS``), shown as one
# field each; the form shows the fields of the chosen type only.
CONFIG_LABELS = {
    "webhook_url": ("Webhook URL", "The incoming webhook's URL, from the Slack, Teams or Discord app."),
    "channel": ("Slack channel", "e.g. #backups (optional: the webhook's own channel otherwise)."),
    "username": ("Sender name", "Shown as the message's author (optional)."),
    "icon_emoji": ("Icon emoji", "e.g. :floppy_disk: (optional)."),
    "url": ("URL", "Receives a JSON POST per event."),
    "headers": ("Extra headers", "One Name=value per line, e.g. Authorization=Bearer ... (optional)."),
    "bot_token": ("Bot token", "From @BotFather, e.g. 123456:ABC-DEF..."),
    "chat_id": ("Chat ID", "The chat or channel to post to, e.g. -1001234567890."),
    "api_url": ("Bot API URL", "Only for a self-hosted Bot API server (optional)."),
    "to": ("Send to", "One e-mail address per line (up to 20)."),
    "from_email": ("From", "The sender address (optional: the platform's default)."),
    "smtp_host": ("SMTP server", "Optional: the platform's mail settings otherwise."),
    "smtp_port": ("SMTP port", "e.g. 587 (STARTTLS) or 465 (SSL)."),
    "smtp_username": ("SMTP user name", ""),
    "smtp_password": ("SMTP password", ""),
    "smtp_security": ("Connection security", ""),
}
KEEP_SECRET = "Stored once saved and never shown again; leave blank to keep it."


def _config_field(key: channel_types.ConfigKey) -> forms.Field:
    label, help_text = CONFIG_LABELS.get(key.name, (key.name.replace("_", " ").capitalize(), ""))
    options = {"label": label, "required": False, "help_text": help_text}
    if key.kind == "headers":
        return KeyValueField(**options, widget=forms.Textarea(attrs={"rows": 2, "autocomplete": "off"}))
    if key.secret:
        options["help_text"] = f"{help_text} {KEEP_SECRET}".strip()
        return forms.CharField(**options, max_length=key.max_length, widget=forms.PasswordInput(render_value=False))
    if key.kind == "int":
        return forms.IntegerField(**options, min_value=1, max_value=65535)
    if key.kind == "email_list":
        return LinesField(**options)
    if key.kind == "choice":
        return forms.ChoiceField(**options, choices=[("", "default"), *[(c, c) for c in key.choices]])
    return forms.CharField(**options, max_length=key.max_length)


CONFIG_FIELDS = {
    f"config_{key.name}": _config_field(key) for keys in channel_types.CONFIG_KEYS.values() for key in keys
}
# What the form shows for each type (clear_secrets where the type has an optional secret).
TYPE_CONFIG_FIELDS = {
    str(kind): [f"config_{key.name}" for key in keys]
    + (["clear_secrets"] if any(key.secret and not key.required for key in keys) else [])
    for kind, keys in channel_types.CONFIG_KEYS.items()
}


class ChannelForm(ServiceModelForm):
    """A channel's settings as the fields its type needs (no JSON to type). Secrets are
    write-only: never shown, blank keeps the stored value, ``clear_secrets`` removes the
    optional ones."""

    event_types = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(name, f"{event.label} ({name})") for name, event in EVENT_TYPES.items()],
        label="Events",
        help_text="None ticked: the failures and alerts (" + ", ".join(DEFAULT_CHANNEL_EVENTS) + ").",
    )
    clear_secrets = forms.BooleanField(
        required=False, help_text="Remove the stored optional secrets (e.g. the SMTP password, extra headers)."
    )
    # "config.webhook_url" (the service's error key) is shown on the config_webhook_url field.
    error_aliases = {f"config.{name.removeprefix('config_')}": name for name in CONFIG_FIELDS}

    class Meta:
        model = NotificationChannel
        fields = ["tenant", "name", "type", "is_enabled", "event_types", "min_level"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = (self.instance.config or {}) if self.instance.pk else {}
        secret = {k.name for keys in channel_types.CONFIG_KEYS.values() for k in keys if k.secret}
        for key, value in config.items():
            field = self.fields.get(f"config_{key}")
            if field is None:
                continue
            if key in secret:
                field.help_text = f"Stored. {KEEP_SECRET}"
            else:
                field.initial = value

    @property
    def kind(self) -> str:
        return self.cleaned_data.get("type") or self.instance.type

    def _config(self) -> dict:
        """The type's keys as the service takes them: typed values; a non-secret left empty is
        removed; a secret left empty is kept (or removed with ``clear_secrets``)."""
        data, config = self.cleaned_data, {}
        for key in channel_types.CONFIG_KEYS.get(self.kind, ()):
            value = data.get(f"config_{key.name}")
            if value not in (None, "", [], {}):
                config[key.name] = value
            elif not key.secret or (data.get("clear_secrets") and not key.required):
                config[key.name] = None
        return config

    def write(self) -> NotificationChannel:
        data = self.cleaned_data
        fields = {k: data[k] for k in ("name", "type", "is_enabled", "event_types", "min_level") if k in data}
        if self.instance.pk:
            channel = NotificationChannel.objects.get(pk=self.instance.pk)
            return notifications.channel_update(channel=channel, config=self._config(), **fields)
        config = {k: v for k, v in self._config().items() if v is not None}
        return notifications.channel_create(tenant=data["tenant"], config=config, actor=self.actor, **fields)


ChannelForm.declared_fields.update(CONFIG_FIELDS)
ChannelForm.base_fields.update(CONFIG_FIELDS)


@admin.register(NotificationChannel)
class NotificationChannelAdmin(TenantScopedAdminMixin, ServiceAdminMixin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "tenant", "type", "is_enabled", "min_level", "health", "last_delivered_at"]
    list_filter = ["type", "is_enabled", "tenant"]
    readonly_fields = ["configured_keys", "consecutive_failures", "failing_since", "last_error", "last_delivered_at"]
    actions = ["send_test"]

    def get_fieldsets(self, request, obj=None):
        config = [*dict.fromkeys(CONFIG_FIELDS), "clear_secrets"]
        state = ["configured_keys", "consecutive_failures", "failing_since", "last_error", "last_delivered_at"]
        return [
            (None, {"fields": ["tenant", "name", "type", "is_enabled"]}),
            (
                "Where to send",
                {
                    "fields": config,
                    "classes": ["channel-config"],
                    "description": "Only the fields of the chosen type are shown. "
                    "Secrets are never shown again once saved.",
                },
            ),
            ("What to send", {"fields": ["event_types", "min_level"]}),
            *([("State", {"fields": state})] if obj is not None else []),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["type_fields"] = json.dumps({"fields": TYPE_CONFIG_FIELDS, "current": obj.type if obj else ""})
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="Health")
    def health(self, obj) -> str:
        return f"FAILING since {obj.failing_since:%Y-%m-%d %H:%M}" if obj.failing_since else "ok"

    @admin.display(description="Stored configuration (secrets hidden)")
    def configured_keys(self, obj) -> str:
        public = channel_types.config_public(obj.type, obj.config or {}) if obj.pk else {}
        return "; ".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in public.items()) or "-"

    def delete_model(self, request, obj):
        notifications.channel_delete(channel=obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            notifications.channel_delete(channel=obj)

    @admin.action(description="Send a test message now")
    def send_test(self, request, queryset):
        for channel in queryset:
            result, _ = notifications.channel_test(channel=channel, message="Test notification from the admin")
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(
                request,
                f"{channel.name}: {'sent' if result.ok else 'failed'} "
                f"({result.status_code or '-'}) {result.detail[:200]}",
                level,
            )


@admin.register(Webhook)
class WebhookAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = ["url", "tenant", "is_active", "health", "last_delivered_at", "created_at"]
    list_filter = ["is_active", "tenant"]
    fields = [
        "tenant",
        "url",
        "description",
        "event_types",
        "is_active",
        "consecutive_failures",
        "failing_since",
        "last_error",
        "last_delivered_at",
    ]
    readonly_fields = fields

    @admin.display(description="Health")
    def health(self, obj) -> str:
        return f"FAILING since {obj.failing_since:%Y-%m-%d %H:%M}" if obj.failing_since else "ok"

    def has_add_permission(self, request, *args) -> bool:
        return False  # created through the API, which shows the signing secret once

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj):
        notifications.webhook_delete(webhook=obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            notifications.webhook_delete(webhook=obj)


@admin.register(Delivery)
class DeliveryAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "public_id",
        "tenant",
        "event_type",
        "destination",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "delivered_at",
    ]
    list_filter = ["status", "event_type", "tenant"]
    search_fields = ["public_id", "event_type", "last_error"]
    list_select_related = ["tenant", "channel", "webhook"]
    readonly_fields = [f.name for f in Delivery._meta.fields]
    date_hierarchy = "created_at"

    @admin.display(description="Destination")
    def destination(self, obj) -> str:
        return str(obj.channel or obj.webhook or "")

    def has_add_permission(self, request, *args) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
