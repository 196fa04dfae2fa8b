"""Remote commands: templates with ``{{variable}}`` placeholders, run over SSH on a server.

db-backup-platform.md "Commands". DESIGN.md: "variables are validated and shell-quoted; a
template can never become a second command". Each value is passed through ``shlex.quote``,
so ``; rm -rf /`` arrives as one literal argument. That holds only where the shell reads the
placeholder as a word of its own, so a template is refused when a placeholder stands inside
quotes (``"{{x}}"``: double quotes would still expand ``$(...)`` in the quoted value) or
when it holds a here-document (whose body is not word-split nor unquoted).

A run is an execution row, queued to Celery, connected with the server's stored credentials
and its pinned host key (``credentials.host_key``; without one the key is accepted and
logged, trust on first use), bounded by a timeout, with stdout/stderr captured up to
``COMMAND_OUTPUT_LIMIT`` each. Each run is in the audit log and pushed on ``/ws``
(``command_execution``).
"""

from __future__ import annotations

import logging
import re
import shlex
import time
import uuid
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import emit, publish, stored_user
from backupplatform import netpolicy
from backupplatform.celery import app
from backupplatform.errors import NotFound, ValidationFailed
from backupplatform.isotime import utc_now_iso
from tenants.models import Tenant

from .. import connectivity
from ..models import CommandExecution, CommandTemplate, ExecutionStatus, Server, ServerType

logger = logging.getLogger(__name__)

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
# Commands reach a machine over SSH: SSH servers, and Docker hosts (reached by SSH).
SSH_SERVER_TYPES = (ServerType.SSH, ServerType.DOCKER)
MAX_TEMPLATE = 10_000
MAX_VALUE = 4_096


def template_variables(template: Any) -> list[str]:
    """The placeholders of ``template`` in order of first use; raises ``ValidationFailed``
    for a template whose placeholders could not be substituted safely."""
    field = "command_template"
    if not isinstance(template, str) or not template.strip():
        raise ValidationFailed(details={field: ["A command is required."]})
    if len(template) > MAX_TEMPLATE or "\x00" in template:
        raise ValidationFailed(details={field: [f"At most {MAX_TEMPLATE} characters, no NUL."]})
    names: list[str] = []
    quote: str | None = None
    i = 0
    while i < len(template):
        match = PLACEHOLDER.match(template, i)
        if match:
            if quote:
                raise ValidationFailed(
                    details={
                        field: [
                            f"The placeholder {{{{{match.group(1)}}}}} stands inside quotes; write it bare: its value "
                            "is quoted for you."
                        ]
                    }
                )
            if match.group(1) not in names:
                names.append(match.group(1))
            i = match.end()
            continue
        if template.startswith(("{{", "}}"), i):
            raise ValidationFailed(details={field: ["Placeholders are {{name}}: letters, digits and _ only."]})
        char = template[i]
        if quote == "'":
            if char == "'":
                quote = None
        elif quote == '"':
            if char == "\\":
                i += 1
            elif char == '"':
                quote = None
        elif char == "\\":
            i += 1
        elif char in "'\"":
            quote = char
        i += 1
    if quote:
        raise ValidationFailed(details={field: ["A quote is not closed."]})
    if names and re.search(r"<<(?!<)", template):
        raise ValidationFailed(details={field: ["Placeholders cannot be used with here-documents (<<)."]})
    return names


def render_command(template: str, variables: Any) -> str:
    """``template`` with each placeholder replaced by its value, shell-quoted."""
    names = template_variables(template)
    if not isinstance(variables, dict):
        raise ValidationFailed(details={"variables": ["An object of variable values is required."]})
    errors: dict[str, list[str]] = {}
    for name in sorted(set(variables) - set(names)):
        errors[f"variables.{name}"] = ["This template has no such placeholder."]
    for name in names:
        value = variables.get(name)
        if name not in variables:
            errors[f"variables.{name}"] = ["This field is required."]
        elif not isinstance(value, str) or len(value) > MAX_VALUE or "\x00" in value:
            errors[f"variables.{name}"] = [f"A string of at most {MAX_VALUE} characters is required."]
    if errors:
        raise ValidationFailed(details=errors)
    return PLACEHOLDER.sub(lambda m: shlex.quote(variables[m.group(1)]), template)


def _check_name(tenant: Tenant, name: str, exclude_pk: int | None = None) -> None:
    qs = CommandTemplate.objects.filter(tenant=tenant, name=name)
    if exclude_pk is not None:
        qs = qs.exclude(pk=exclude_pk)
    if qs.exists():
        raise ValidationFailed(details={"name": ["A command with this name already exists."]})


@transaction.atomic
def command_create(
    *,
    tenant: Tenant,
    name: str,
    command_template: str,
    description: str = "",
    type: str = "shell",
    tags: str = "",
    actor: Any = None,
) -> CommandTemplate:
    _check_name(tenant, name)
    variables = template_variables(command_template)
    command = CommandTemplate.objects.create(
        tenant=tenant,
        name=name,
        command_template=command_template,
        description=description,
        type=type,
        tags=tags,
        created_by=stored_user(actor),
    )
    emit(
        action="command_create",
        tenant=tenant,
        resource_type="command",
        resource_id=command.pk,
        details={"name": name, "type": type, "command_template": command_template, "variables": variables},
    )
    return command


@transaction.atomic
def command_update(*, command: CommandTemplate, **changes: Any) -> CommandTemplate:
    changed = []
    if "name" in changes and changes["name"] != command.name:
        _check_name(command.tenant, changes["name"], exclude_pk=command.pk)
    if "command_template" in changes:
        template_variables(changes["command_template"])
    for field in ("name", "description", "command_template", "type", "tags"):
        if field in changes and getattr(command, field) != changes[field]:
            setattr(command, field, changes[field])
            changed.append(field)
    command.save()
    emit(
        action="command_update",
        tenant=command.tenant,
        resource_type="command",
        resource_id=command.pk,
        details={"changed_fields": changed, "command_template": command.command_template},
    )
    return command


@transaction.atomic
def command_delete(*, command: CommandTemplate) -> None:
    pk, tenant, name = command.pk, command.tenant, command.name
    command.delete()
    emit(action="command_delete", tenant=tenant, resource_type="command", resource_id=pk, details={"name": name})


@transaction.atomic
def command_execute(
    *,
    command: CommandTemplate,
    server: Server,
    variables: dict | None = None,
    timeout: int | None = None,
    actor: Any = None,
) -> CommandExecution:
    """Queue a run of ``command`` on ``server`` (after commit); the values are checked and
    quoted now, so a bad value is the caller's validation error, not a failed run."""
    if server.tenant_id != command.tenant_id:
        raise NotFound("Server not found")
    if server.type not in SSH_SERVER_TYPES:
        raise ValidationFailed(
            details={
                "server_id": [
                    f"Commands run over SSH: the server must be of type {' or '.join(SSH_SERVER_TYPES)}, not {server.type}."
                ]
            }
        )
    limit = int(settings.COMMAND_MAX_TIMEOUT)
    timeout = int(timeout or settings.COMMAND_DEFAULT_TIMEOUT)
    if not 1 <= timeout <= limit:
        raise ValidationFailed(details={"timeout_seconds": [f"Between 1 and {limit} seconds."]})
    text = render_command(command.command_template, variables or {})
    user = stored_user(actor)
    execution = CommandExecution.objects.create(
        tenant_id=command.tenant_id,
        command=command,
        server=server,
        command_text=text,
        variables=variables or {},
        timeout_seconds=timeout,
        executed_by=user,
        task_id=str(uuid.uuid4()),
        executed_by_name=getattr(user, "username", "") or getattr(actor, "username", "") or "system",
    )
    emit(
        action="command_execute",
        tenant=command.tenant,
        resource_type="command_execution",
        resource_id=execution.pk,
        details={
            "command_id": command.pk,
            "command": command.name,
            "server_id": server.pk,
            "server": server.name,
            "variables": variables or {},
            "timeout_seconds": timeout,
        },
    )

    def send() -> None:

        # The task's id is chosen here, so the caller's answer names the task it queued.
        app.send_task("backups.tasks.run_command", args=[execution.pk], task_id=execution.task_id)

    transaction.on_commit(send)
    return execution


def execution_event(execution: CommandExecution) -> dict[str, Any]:
    """The ``command_execution`` WebSocket event (no output: it may be large or sensitive,
    and ``GET /commands/{id}/executions`` has it)."""
    return {
        "type": "command_execution",
        "execution_id": execution.pk,
        "command_id": execution.command_id,
        "server_id": execution.server_id,
        "status": execution.status,
        "exit_code": execution.exit_code,
        "duration_seconds": execution.duration_seconds,
        "executed_by": execution.executed_by_name,
        "error": execution.error_message or None,
        "timestamp": utc_now_iso(micro=True),
    }


class _Capped:
    """Collects a stream up to ``limit`` bytes, counting what was dropped."""

    def __init__(self, limit: int) -> None:
        self.limit, self.data, self.dropped = limit, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        self.data += chunk[: max(room, 0)]
        self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


def ssh_run(
    *,
    host: str,
    port: int,
    username: str | None,
    password: str | None,
    ssh_key: str | None,
    host_key: str | None,
    command: str,
    timeout: float,
    limit: int,
) -> dict[str, Any]:
    """Run ``command`` over SSH; returns exit code (``None`` on timeout), output and flags.

    Raises ``connectivity.ConnectionFailed`` when the server cannot be reached, refuses the
    login or shows another host key than the pinned one.
    """
    client = connectivity.open_ssh(
        host=host,
        port=port,
        username=username,
        password=password,
        private_key=ssh_key,
        host_key=host_key,
        timeout=min(timeout, 15.0),
    )
    out, err = _Capped(limit), _Capped(limit)
    timed_out = False
    try:
        channel = client.get_transport().open_session(timeout=min(timeout, 15.0))
        channel.exec_command(command)
        deadline = time.monotonic() + timeout
        while True:
            busy = False
            if channel.recv_ready():
                out.add(channel.recv(65536))
                busy = True
            if channel.recv_stderr_ready():
                err.add(channel.recv_stderr(65536))
                busy = True
            if not busy and channel.exit_status_ready():
                break
            if time.monotonic() > deadline:
                timed_out = True
                break
            if not busy:
                time.sleep(0.02)
        exit_code = None if timed_out else channel.recv_exit_status()
        channel.close()
    finally:
        client.close()
    return {
        "exit_code": exit_code,
        "timed_out": timed_out,
        "stdout": out.text(),
        "stderr": err.text(),
        "truncated": bool(out.dropped or err.dropped),
    }


def command_run(*, execution_id: int) -> CommandExecution | None:
    """The work of one execution (the Celery task). Claimed once; never raises for a
    failure of the remote side (it is recorded on the execution)."""
    now = timezone.now()
    if not CommandExecution.objects.filter(pk=execution_id, status=ExecutionStatus.PENDING).update(
        status=ExecutionStatus.RUNNING, started_at=now
    ):
        return None
    execution = CommandExecution.objects.select_related("server", "tenant", "command").get(pk=execution_id)
    publish(tenant_id=execution.tenant_id, event=execution_event(execution))
    server = execution.server
    result: dict[str, Any] = {}
    error = ""
    try:
        if server is None:
            raise connectivity.ConnectionFailed("error", "The server was deleted")
        if reason := netpolicy.host_refusal(server.host, server.port):
            raise connectivity.ConnectionFailed(
                "not_allowed", f"{server.host}:{server.port} is not allowed as a target: {reason}"
            )
        creds = server.credentials or {}
        result = ssh_run(
            host=server.host,
            port=server.port,
            username=creds.get("username"),
            password=creds.get("password"),
            ssh_key=creds.get("ssh_key"),
            host_key=creds.get("host_key"),
            command=execution.command_text,
            timeout=execution.timeout_seconds,
            limit=int(settings.COMMAND_OUTPUT_LIMIT),
        )
    except connectivity.ConnectionFailed as exc:
        error = exc.message
    except Exception as exc:  # recorded on the row; the worker goes on
        logger.exception("command execution %s failed", execution_id)
        error = f"{type(exc).__name__}: {exc}"
    if error:
        status = ExecutionStatus.FAILED
    elif result["timed_out"]:
        status = ExecutionStatus.TIMEOUT
        error = f"Timed out after {execution.timeout_seconds} s; the session was closed"
    else:
        status = ExecutionStatus.COMPLETED if result["exit_code"] == 0 else ExecutionStatus.FAILED
        if result["exit_code"] != 0:
            error = f"Exited with status {result['exit_code']}"
    execution.status, execution.exit_code = status, result.get("exit_code")
    execution.stdout, execution.stderr = result.get("stdout", ""), result.get("stderr", "")
    execution.output_truncated, execution.error_message = result.get("truncated", False), error
    execution.completed_at = timezone.now()
    with transaction.atomic():
        execution.save(
            update_fields=[
                "status",
                "exit_code",
                "stdout",
                "stderr",
                "output_truncated",
                "error_message",
                "completed_at",
            ]
        )
        emit(
            action="command_execution_completed" if status == ExecutionStatus.COMPLETED else "command_execution_failed",
            tenant=execution.tenant,
            resource_type="command_execution",
            resource_id=execution.pk,
            actor=execution.executed_by,
            details={
                "command_id": execution.command_id,
                "server_id": execution.server_id,
                "status": status,
                "exit_code": execution.exit_code,
                "duration_seconds": execution.duration_seconds,
                "error": error,
            },
        )
        publish(tenant_id=execution.tenant_id, event=execution_event(execution))
    return execution


def execution_list(*, command: CommandTemplate):
    return CommandExecution.objects.filter(command=command).order_by("-created_at", "-id")
