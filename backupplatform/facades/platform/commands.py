"""Platform facade: remote commands (db-backup-platform.md, "Commands").

Templates hold ``{{variable}}`` placeholders; ``POST /commands/{id}/execute`` checks and
shell-quotes the values, then queues the run over SSH and answers 202 with the execution's
id (the seed's ``execution_id``, ``status``, ``task_id``). Lists are plain arrays, as the seed
shows. Admins only: a command runs on the workspace's machines.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import mixins, serializers

from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.facades.base import respond
from backupplatform.facades.serializers import (
    InputSerializer,
    StrictCharField,
    StrictDictField,
    StrictIntegerField,
    validated,
)
from backupplatform.ids import is_id
from backupplatform.tenancy import scoped
from backups.config_selectors import server_list
from backups.models import CommandExecution, CommandTemplate
from backups.services import commands as services
from tenants.models import Role

from .conventions import PlatformViewSet


class CommandSerializer(serializers.ModelSerializer):
    created_by = serializers.SerializerMethodField()
    variables = serializers.SerializerMethodField()

    class Meta:
        model = CommandTemplate
        fields = [
            "id",
            "name",
            "description",
            "command_template",
            "type",
            "tags",
            "variables",
            "created_by",
            "created_at",
            "updated_at",
        ]

    def get_created_by(self, obj: CommandTemplate) -> str | None:
        return obj.created_by.username if obj.created_by else None

    def get_variables(self, obj: CommandTemplate) -> list[str]:
        return services.template_variables(obj.command_template)


class CommandExecutionSerializer(serializers.ModelSerializer):
    command_id = serializers.IntegerField(allow_null=True)
    server_id = serializers.IntegerField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True, read_only=True)
    executed_by = serializers.CharField(source="executed_by_name")

    class Meta:
        model = CommandExecution
        fields = [
            "id",
            "command_id",
            "server_id",
            "command_text",
            "status",
            "exit_code",
            "stdout",
            "stderr",
            "output_truncated",
            "error_message",
            "timeout_seconds",
            "started_at",
            "completed_at",
            "duration_seconds",
            "executed_by",
            "created_at",
        ]


class CommandCreateInput(InputSerializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(required=False, allow_blank=True, max_length=5000)
    command_template = StrictCharField(max_length=10_000, trim_whitespace=False)
    type = StrictCharField(required=False, max_length=30, default="shell")
    tags = StrictCharField(required=False, allow_blank=True, max_length=500)


class CommandUpdateInput(CommandCreateInput):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class ExecuteInput(InputSerializer):
    server_id = StrictIntegerField(min_value=1)
    variables = StrictDictField(required=False, default=dict)
    timeout_seconds = StrictIntegerField(required=False, min_value=1, max_value=86_400)


Queued = inline_serializer(
    "CommandExecutionQueued",
    {
        "execution_id": serializers.IntegerField(),
        "status": serializers.CharField(),
        "task_id": serializers.CharField(allow_null=True),
        "command_text": serializers.CharField(),
    },
)


class CommandViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, PlatformViewSet):
    serializer_class = CommandSerializer
    queryset = CommandTemplate.objects.none()
    unpaginated = True  # "List Commands" shows a plain array
    roles = {
        action: Role.ADMIN for action in ("list", "retrieve", "create", "update", "destroy", "execute", "executions")
    }

    def tenant_queryset(self, tenant):
        return scoped(CommandTemplate.objects.select_related("created_by"), tenant).order_by("name", "id")

    def get_object(self):
        if not is_id(self.kwargs.get("pk", "")):
            raise ValidationFailed(details={"id": ["A whole number is required."]})
        return super().get_object()

    @extend_schema(request=CommandCreateInput, responses={201: CommandSerializer})
    def create(self, request):
        data = validated(CommandCreateInput, request.data)
        command = services.command_create(tenant=self.require_tenant(), actor=request.user, **data)
        return respond(CommandSerializer(command).data, status_code=201)

    @extend_schema(request=CommandUpdateInput, responses={200: CommandSerializer})
    def update(self, request, pk=None):
        command = self.get_object()
        command = services.command_update(command=command, **validated(CommandUpdateInput, request.data))
        return respond(CommandSerializer(command).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.command_delete(command=self.get_object())
        return respond(status_code=204)

    @extend_schema(request=ExecuteInput, responses={201: Queued})
    def execute(self, request, pk=None):
        command = self.get_object()
        data = validated(ExecuteInput, request.data)
        server = server_list(tenant=self.require_tenant()).filter(pk=data["server_id"]).first()
        if server is None:
            raise NotFound("Server not found")
        execution = services.command_execute(
            command=command,
            server=server,
            variables=data.get("variables"),
            timeout=data.get("timeout_seconds"),
            actor=request.user,
        )
        return respond(
            {
                "execution_id": execution.pk,
                "status": execution.status,
                "task_id": execution.task_id or None,
                "command_text": execution.command_text,
            },
            status_code=201,
        )

    @extend_schema(responses={200: CommandExecutionSerializer(many=True)})
    def executions(self, request, pk=None):
        command = self.get_object()
        rows = services.execution_list(command=command)[:200]
        return respond(CommandExecutionSerializer(rows, many=True).data)
