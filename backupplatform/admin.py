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
from audit.models import AuditEvent, Delivery, NotificationChannel, Webhook
from backupplatform.admin_forms import LinesField
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


class ChannelForm(forms.ModelForm):
    """Configuration is write-only: the form shows which keys are set, never their values;
    a JSON object typed here replaces the keys it names (secrets left out are kept)."""

    event_types = LinesField(label="Event types", help_text="One per line, e.g. backup.failed (empty: every event).")

    config_update = forms.JSONField(
        required=False,
        label="Configuration changes",
        help_text='JSON object, e.g. {"webhook_url": "https://..."}. '
        "Keys left out keep their stored value; null removes one.",
    )

    class Meta:
        model = NotificationChannel
        fields = ["tenant", "name", "type", "is_enabled", "event_types", "min_level"]

    def clean(self):
        from backupplatform.errors import ValidationFailed

        data = super().clean()
        if self.errors:
            return data
        try:
            current = self.instance.config if self.instance.pk and data.get("type") == self.instance.type else None
            self.cleaned_config = channel_types.config_validate(
                data["type"], data.get("config_update") or {}, current=current
            )
            notifications._check_event_types(data.get("event_types") or [])
        except ValidationFailed as exc:
            raise forms.ValidationError([f"{k}: {' '.join(v)}" for k, v in (exc.details or {}).items()]) from None
        return data


@admin.register(NotificationChannel)
class NotificationChannelAdmin(TenantScopedAdminMixin, admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "tenant", "type", "is_enabled", "min_level", "health", "last_delivered_at"]
    list_filter = ["type", "is_enabled", "tenant"]
    readonly_fields = ["configured_keys", "consecutive_failures", "failing_since", "last_error", "last_delivered_at"]
    actions = ["send_test"]

    @admin.display(description="Health")
    def health(self, obj) -> str:
        return f"FAILING since {obj.failing_since:%Y-%m-%d %H:%M}" if obj.failing_since else "ok"

    @admin.display(description="Configuration (secrets hidden)")
    def configured_keys(self, obj) -> str:
        return json.dumps(channel_types.config_public(obj.type, obj.config or {}), indent=1) if obj.pk else ""

    def save_model(self, request, obj, form, change):
        fields = {k: form.cleaned_data[k] for k in ("name", "type", "is_enabled", "event_types", "min_level")}
        if change:
            notifications.channel_update(channel=obj, config=form.cleaned_config, **fields)
        else:
            created = notifications.channel_create(
                tenant=form.cleaned_data["tenant"], config=form.cleaned_config, actor=request.user, **fields
            )
            obj.pk = created.pk

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
