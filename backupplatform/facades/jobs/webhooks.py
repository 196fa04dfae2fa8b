"""Jobs facade: webhook subscriptions (api-layer.md "Webhook support for events").

``POST /webhooks`` subscribes an http(s) URL to event types and answers the signing secret
once; deliveries are signed JSON (``audit/webhooks.py``, README "Notifications, webhooks,
commands and metrics"). ``GET /webhooks/{id}`` (ours) shows the latest deliveries. Admins only:
a webhook sends the workspace's events outside the platform.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers

from audit import notifications as services
from audit.events import EVENT_TYPES
from audit.models import Webhook
from audit.selectors import recent_deliveries, webhook_list
from backupplatform.errors import ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.facades.platform.notifications import DeliverySerializer
from backupplatform.facades.serializers import InputSerializer, StrictCharField, validated
from backupplatform.ids import is_id
from tenants.models import Role

from .conventions import JobsViewSet


class WebhookSerializer(serializers.ModelSerializer):
    status = serializers.SerializerMethodField()

    class Meta:
        model = Webhook
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "is_active",
            "status",
            "consecutive_failures",
            "failing_since",
            "last_error",
            "last_delivered_at",
            "created_at",
        ]

    def get_status(self, obj: Webhook) -> str:
        return "failing" if obj.failing_since else "ok"


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="The signing secret: shown once, never again")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookDetailSerializer(WebhookSerializer):
    recent_deliveries = serializers.SerializerMethodField()

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "recent_deliveries"]

    @extend_schema_field(DeliverySerializer(many=True))
    def get_recent_deliveries(self, obj: Webhook) -> list[dict]:
        return DeliverySerializer(recent_deliveries(webhook=obj), many=True).data


class WebhookCreateInput(InputSerializer):
    url = StrictCharField(max_length=2000)
    event_types = serializers.ListField(
        child=StrictCharField(max_length=60), min_length=1, max_length=50, help_text="Known: " + ", ".join(EVENT_TYPES)
    )
    description = StrictCharField(max_length=500, required=False, allow_blank=True, default="")


class WebhookViewSet(mixins.ListModelMixin, JobsViewSet):
    serializer_class = WebhookSerializer
    queryset = Webhook.objects.none()
    roles = {"list": Role.ADMIN, "retrieve": Role.ADMIN, "create": Role.ADMIN, "destroy": Role.ADMIN}

    def tenant_queryset(self, tenant):
        return webhook_list(tenant=tenant)

    def get_object(self):
        if not is_id(self.kwargs.get("pk", "")):
            raise ValidationFailed(details={"id": ["A whole number is required."]})
        return super().get_object()

    @extend_schema(responses={200: WebhookDetailSerializer})
    def retrieve(self, request, pk=None):
        return respond(WebhookDetailSerializer(self.get_object()).data)

    @extend_schema(request=WebhookCreateInput, responses={201: WebhookCreatedSerializer})
    def create(self, request):
        data = validated(WebhookCreateInput, request.data)
        webhook, secret = services.webhook_create(tenant=self.require_tenant(), actor=request.user, **data)
        return respond(
            {**WebhookSerializer(webhook).data, "secret": secret},
            status_code=201,
            message="Webhook created; copy its signing secret now: it will not be shown again",
        )

    @extend_schema(responses={200: WebhookSerializer})
    def destroy(self, request, pk=None):
        webhook = self.get_object()
        body = WebhookSerializer(webhook).data
        services.webhook_delete(webhook=webhook)
        return respond(body, message="Webhook deleted")
