"""Platform facade: notification channels (db-backup-platform.md, "Notifications").

The seed lists, creates and tests channels; get, update and delete are ours. A channel's
``config`` is write-only: responses show its public keys (``channel``, ``chat_id``, ``to``...)
and ``[HIDDEN]`` for every secret (webhook URLs, tokens, SMTP passwords). ``PUT`` is partial,
and config keys left out keep their stored value. Viewers read; admins manage and test.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import mixins, serializers

from audit import channels as channel_types
from audit import notifications as services
from audit.events import DEFAULT_CHANNEL_EVENTS, EVENT_TYPES
from audit.models import ChannelType, Delivery, Level, NotificationChannel
from audit.selectors import channel_list, recent_deliveries
from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    validated,
)
from backupplatform.ids import is_id
from tenants.models import Role

from .conventions import PlatformView, PlatformViewSet


class DeliverySerializer(serializers.ModelSerializer):
    id = serializers.CharField(source="public_id")

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_type",
            "status",
            "attempts",
            "last_status_code",
            "last_error",
            "created_at",
            "next_attempt_at",
            "delivered_at",
        ]


class ChannelSerializer(serializers.ModelSerializer):
    config = serializers.SerializerMethodField()
    status = serializers.SerializerMethodField()

    class Meta:
        model = NotificationChannel
        fields = [
            "id",
            "name",
            "type",
            "is_enabled",
            "config",
            "event_types",
            "min_level",
            "status",
            "consecutive_failures",
            "failing_since",
            "last_error",
            "last_delivered_at",
            "created_at",
            "updated_at",
        ]

    def get_config(self, obj: NotificationChannel) -> dict:
        return channel_types.config_public(obj.type, obj.config or {})

    def get_status(self, obj: NotificationChannel) -> str:
        """``failing`` once deliveries keep failing (the channel stays enabled), else ``ok``."""
        return "failing" if obj.failing_since else "ok"


class ChannelDetailSerializer(ChannelSerializer):
    recent_deliveries = serializers.SerializerMethodField()

    class Meta(ChannelSerializer.Meta):
        fields = [*ChannelSerializer.Meta.fields, "recent_deliveries"]

    @extend_schema_field(DeliverySerializer(many=True))
    def get_recent_deliveries(self, obj: NotificationChannel) -> list[dict]:
        return DeliverySerializer(recent_deliveries(channel=obj), many=True).data


EVENT_HELP = (
    "Event types to receive (default: " + ", ".join(DEFAULT_CHANNEL_EVENTS) + "); known: " + ", ".join(EVENT_TYPES)
)


class ChannelCreateInput(InputSerializer):
    name = StrictCharField(max_length=200)
    type = serializers.ChoiceField(choices=ChannelType.choices)
    config = StrictDictField(
        help_text="Per type: slack/teams/discord webhook_url; webhook url (+ headers); "
        "telegram bot_token, chat_id (+ api_url); email to (+ smtp_host, "
        "smtp_port, smtp_username, smtp_password, smtp_security, from_email)"
    )
    is_enabled = StrictBooleanField(required=False, default=True)
    event_types = serializers.ListField(
        child=StrictCharField(max_length=60), required=False, max_length=50, help_text=EVENT_HELP
    )
    min_level = serializers.ChoiceField(choices=Level.choices, required=False, default=Level.INFO)


class ChannelUpdateInput(ChannelCreateInput):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class TestInput(InputSerializer):
    channel_id = StrictIntegerField(min_value=1)
    message = StrictCharField(max_length=2000, required=False, default="Test notification")


TestResult = inline_serializer(
    "NotificationTestResult",
    {
        "success": serializers.BooleanField(),
        "channel_id": serializers.IntegerField(),
        "delivery_id": serializers.CharField(),
        "status_code": serializers.IntegerField(allow_null=True),
        "message": serializers.CharField(),
        "latency_ms": serializers.IntegerField(),
    },
)


class ChannelViewSet(mixins.ListModelMixin, PlatformViewSet):
    """The workspace's notification channels."""

    serializer_class = ChannelSerializer
    queryset = NotificationChannel.objects.none()
    unpaginated = True  # "List Notification Channels" shows a plain array
    roles = {
        "list": Role.VIEWER,
        "retrieve": Role.VIEWER,
        "create": Role.ADMIN,
        "update": Role.ADMIN,
        "destroy": Role.ADMIN,
    }

    def tenant_queryset(self, tenant):
        return channel_list(tenant=tenant)

    def get_object(self):
        if not is_id(self.kwargs.get("pk", "")):
            raise ValidationFailed(details={"id": ["A whole number is required."]})
        return super().get_object()

    @extend_schema(responses={200: ChannelDetailSerializer})
    def retrieve(self, request, pk=None):
        return respond(ChannelDetailSerializer(self.get_object()).data)

    @extend_schema(request=ChannelCreateInput, responses={201: ChannelSerializer})
    def create(self, request):
        data = validated(ChannelCreateInput, request.data)
        channel = services.channel_create(tenant=self.require_tenant(), actor=request.user, **data)
        return respond(ChannelSerializer(channel).data, status_code=201)

    @extend_schema(request=ChannelUpdateInput, responses={200: ChannelSerializer})
    def update(self, request, pk=None):
        channel = self.get_object()
        data = validated(ChannelUpdateInput, request.data)
        channel = services.channel_update(channel=channel, **data)
        return respond(ChannelSerializer(channel).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.channel_delete(channel=self.get_object())
        return respond(status_code=204)


class NotificationTestView(PlatformView):
    """``POST /notifications/test``: send one message now and say what the receiver answered."""

    roles = {"POST": Role.ADMIN}

    @extend_schema(request=TestInput, responses={200: TestResult})
    def post(self, request):
        data = validated(TestInput, request.data)
        channel = channel_list(tenant=self.require_tenant()).filter(pk=data["channel_id"]).first()
        if channel is None:
            raise NotFound("Notification channel not found")
        result, delivery = services.channel_test(channel=channel, message=data["message"])
        return respond(
            {
                "success": result.ok,
                "channel_id": channel.pk,
                "delivery_id": delivery.public_id,
                "status_code": result.status_code,
                "message": "Delivered" if result.ok and not result.detail else result.detail,
                "latency_ms": result.latency_ms,
            }
        )
