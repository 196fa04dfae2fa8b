"""Remote commands (db-backup-platform.md "Commands") against the real SSH server the tests
start (asyncssh, commands run by /bin/sh in a subprocess): quoting, output, exit codes,
timeouts, host-key pinning, and the API's roles, isolation and bad input."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from audit.models import AuditEvent
from audit.services import tenant_group
from backupplatform.errors import ValidationFailed
from backups import services as backup_services
from backups.models import CommandExecution
from backups.services import commands
from tenants.models import Role
from tests.conftest import make_member

pytestmark = pytest.mark.django_db

OTHER_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHf1zL1y9XlB7wW2JkR5m8Q0m3m3lYtq5d2mJ6p8ZbQh"


@pytest.fixture
def ssh_row(tenant_a, sftp_server):
    return backup_services.server_create(
        tenant=tenant_a,
        name="box",
        type="ssh",
        host=sftp_server.host,
        port=sftp_server.port,
        credentials={
            "username": sftp_server.username,
            "password": sftp_server.password,
            "host_key": sftp_server.host_key,
        },
    )


def run(tenant, server, template: str, variables: dict | None = None, timeout: int | None = None):
    command = commands.command_create(
        tenant=tenant, name=f"c{CommandExecution.objects.count()}-{len(template)}", command_template=template
    )
    execution = commands.command_execute(command=command, server=server, variables=variables or {}, timeout=timeout)
    commands.command_run(execution_id=execution.pk)
    execution.refresh_from_db()
    return execution


# --- quoting ----------------------------------------------------------------------------------


def test_a_hostile_value_arrives_as_one_literal_argument(tenant_a, ssh_row, sftp_server):
    marker = sftp_server.root / "pwned"
    hostile = f"x; touch {marker}; echo $(id) `id` && rm -rf / #"
    execution = run(
        tenant_a,
        ssh_row,
        "printf '[%s]\\n' {{value}} {{other}}",
        {"value": hostile, "other": 'it\'s "quoted"\nnewline'},
    )
    assert execution.status == "completed", execution.error_message
    assert execution.stdout == f'[{hostile}]\n[it\'s "quoted"\nnewline]\n'
    assert not marker.exists()
    assert execution.command_text.startswith("printf '[%s]\\n' 'x; touch")


@pytest.mark.parametrize(
    "template",
    [
        'echo "{{name}}"',
        "echo '{{name}}'",
        "echo $'{{name}}'",
        "cat <<EOF\n{{name}}\nEOF",
        "echo {{ na-me }}",
        "echo 'unclosed {{name}}",
    ],
)
def test_templates_where_a_value_could_escape_its_quotes_are_refused(template):
    with pytest.raises(ValidationFailed):
        commands.template_variables(template)


def test_values_must_match_the_placeholders():
    with pytest.raises(ValidationFailed) as missing:
        commands.render_command("echo {{a}} {{b}}", {"a": "1"})
    assert "variables.b" in missing.value.details
    with pytest.raises(ValidationFailed) as unknown:
        commands.render_command("echo {{a}}", {"a": "1", "zz": "2"})
    assert "variables.zz" in unknown.value.details
    with pytest.raises(ValidationFailed):
        commands.render_command("echo {{a}}", {"a": 5})


# --- real execution ---------------------------------------------------------------------------


def test_output_exit_code_and_duration_are_recorded(tenant_a, ssh_row):
    execution = run(tenant_a, ssh_row, "echo out; echo err 1>&2; exit 3")
    assert (execution.status, execution.exit_code) == ("failed", 3)
    assert (execution.stdout, execution.stderr) == ("out\n", "err\n")
    assert execution.duration_seconds is not None and execution.started_at <= execution.completed_at
    assert "status 3" in execution.error_message


def test_output_is_capped(tenant_a, ssh_row, settings):
    settings.COMMAND_OUTPUT_LIMIT = 100
    execution = run(tenant_a, ssh_row, "head -c 5000 /dev/zero | tr '\\0' a")
    assert execution.status == "completed"
    assert execution.stdout == "a" * 100 and execution.output_truncated


def test_a_command_past_its_timeout_is_stopped_and_marked(tenant_a, ssh_row, sftp_server):
    marker = sftp_server.root / "finished"
    execution = run(tenant_a, ssh_row, f"sleep 20; touch {marker}", timeout=1)
    assert execution.status == "timeout" and execution.exit_code is None
    assert "Timed out after 1 s" in execution.error_message
    assert not marker.exists()


def test_a_host_key_other_than_the_pinned_one_is_refused(tenant_a, ssh_row, sftp_server):
    marker = sftp_server.root / "ran"
    backup_services.server_update(server=ssh_row, credentials={"host_key": OTHER_HOST_KEY})
    execution = run(tenant_a, ssh_row, f"touch {marker}")
    assert execution.status == "failed" and execution.exit_code is None
    assert "does not match the pinned key" in execution.error_message
    assert not marker.exists()


def test_wrong_password_is_a_failed_execution(tenant_a, ssh_row):
    backup_services.server_update(server=ssh_row, credentials={"password": "not-the-password"})
    execution = run(tenant_a, ssh_row, "true")
    assert execution.status == "failed" and "Authentication failed" in execution.error_message
    assert "not-the-password" not in execution.error_message


def test_every_execution_is_audited_and_pushed_to_the_tenants_socket(
    tenant_a, admin_a, ssh_row, django_capture_on_commit_callbacks
):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(tenant_group(tenant_a.pk), channel)
    command = commands.command_create(tenant=tenant_a, name="say", command_template="echo {{word}}")
    execution = commands.command_execute(command=command, server=ssh_row, variables={"word": "hello"})
    with django_capture_on_commit_callbacks(execute=True):
        commands.command_run(execution_id=execution.pk)

    async def drain() -> list[dict]:
        events = []
        while True:
            try:
                message = await asyncio.wait_for(layer.receive(channel), 2)
            except TimeoutError:
                return events
            events.append(message["event"])

    events = async_to_sync(drain)()
    pushed = [e for e in events if e.get("type") == "command_execution" and e["execution_id"] == execution.pk]
    assert [e["status"] for e in pushed] == ["running", "completed"]
    actions = set(
        AuditEvent.objects.filter(resource_type="command_execution", resource_id=str(execution.pk)).values_list(
            "action", flat=True
        )
    )
    assert actions == {"command_execute", "command_execution_completed"}


# --- the API ----------------------------------------------------------------------------------


def test_api_runs_a_command_and_lists_its_executions(
    api, admin_a, tenant_a, ssh_row, django_capture_on_commit_callbacks
):
    client = api(admin_a)
    created = client.post(
        "/api/v1/commands",
        {"name": "Disk", "command_template": "df -h {{path}}", "type": "shell", "tags": "disk"},
        format="json",
    )
    assert created.status_code == 201, created.content
    command = created.json()
    assert command["variables"] == ["path"] and command["created_by"] == "alice"
    assert client.get("/api/v1/commands").json()[0]["name"] == "Disk"
    with django_capture_on_commit_callbacks(execute=False):
        queued = client.post(
            f"/api/v1/commands/{command['id']}/execute",
            {"server_id": ssh_row.pk, "variables": {"path": "/; reboot"}},
            format="json",
        )
    assert queued.status_code == 201, queued.content  # the execution row exists at once
    body = queued.json()
    assert body["status"] == "pending" and body["command_text"] == "df -h '/; reboot'"
    assert body["task_id"] and CommandExecution.objects.get(pk=body["execution_id"]).task_id == body["task_id"]
    commands.command_run(execution_id=body["execution_id"])
    executions = client.get(f"/api/v1/commands/{command['id']}/executions").json()
    assert [e["id"] for e in executions] == [body["execution_id"]]
    assert executions[0]["executed_by"] == "alice" and executions[0]["status"] in ("completed", "failed")
    updated = client.put(f"/api/v1/commands/{command['id']}", {"description": "free space"}, format="json")
    assert updated.json()["description"] == "free space" and updated.json()["command_template"] == "df -h {{path}}"
    assert client.delete(f"/api/v1/commands/{command['id']}").status_code == 204


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "command_template": 'echo "{{v}}"'}, "command_template"),
        ({"name": "x"}, "command_template"),
        ({"name": "x", "command_template": "echo", "shell": True}, "shell"),
        ({"name": 5, "command_template": "echo"}, "name"),
    ],
)
def test_bad_templates_are_validation_errors(api, admin_a, body, field):
    response = api(admin_a).post("/api/v1/commands", body, format="json")
    assert response.status_code == 422, response.content
    assert field in [item["loc"][-1] for item in response.json()["detail"]]


def test_bad_execute_requests_are_validation_errors(api, admin_a, tenant_a, ssh_row):
    command = commands.command_create(tenant=tenant_a, name="echo", command_template="echo {{a}}")
    pg = backup_services.server_create(tenant=tenant_a, name="pg", type="postgresql", host="127.0.0.1", port=5432)
    client = api(admin_a)
    url = f"/api/v1/commands/{command.pk}/execute"
    for body in (
        {"server_id": ssh_row.pk},
        {"server_id": ssh_row.pk, "variables": {"a": 1}},
        {"server_id": ssh_row.pk, "variables": {"a": "x", "b": "y"}},
        {"server_id": pg.pk, "variables": {"a": "x"}},
        {"variables": {"a": "x"}},
        {"server_id": ssh_row.pk, "variables": {"a": "x"}, "timeout_seconds": 10**9},
    ):
        response = client.post(url, body, format="json")
        assert response.status_code == 422, (body, response.content)
    assert not CommandExecution.objects.exists()


def test_only_admins_manage_and_run_commands(api, tenant_a, operator_a, viewer_a, ssh_row):
    command = commands.command_create(tenant=tenant_a, name="echo", command_template="echo hi")
    for user in (operator_a, viewer_a):
        client = api(user)
        assert client.get("/api/v1/commands").status_code == 403
        assert (
            client.post("/api/v1/commands", {"name": "y", "command_template": "id"}, format="json").status_code == 403
        )
        assert (
            client.post(f"/api/v1/commands/{command.pk}/execute", {"server_id": ssh_row.pk}, format="json").status_code
            == 403
        )
        assert client.delete(f"/api/v1/commands/{command.pk}").status_code == 403
    assert not CommandExecution.objects.exists()


def test_another_tenants_commands_and_servers_are_404(api, tenant_a, tenant_b, admin_b, ssh_row):
    command = commands.command_create(tenant=tenant_a, name="echo", command_template="echo hi")
    b_admin = api(admin_b)
    for method, url in (
        ("get", f"/api/v1/commands/{command.pk}"),
        ("put", f"/api/v1/commands/{command.pk}"),
        ("delete", f"/api/v1/commands/{command.pk}"),
        ("get", f"/api/v1/commands/{command.pk}/executions"),
        ("post", f"/api/v1/commands/{command.pk}/execute"),
    ):
        response = getattr(b_admin, method)(url, {"server_id": ssh_row.pk} if method == "post" else {}, format="json")
        assert response.status_code == 404, (method, url, response.content)
    # B's own command on A's server: the server is not B's.
    own = commands.command_create(tenant=tenant_b, name="echo", command_template="echo hi")
    response = b_admin.post(f"/api/v1/commands/{own.pk}/execute", {"server_id": ssh_row.pk}, format="json")
    assert response.status_code == 404
    assert b_admin.get("/api/v1/commands").json() == [{**b_admin.get(f"/api/v1/commands/{own.pk}").json()}]
    assert not CommandExecution.objects.exists()


def test_viewer_of_servers_sees_the_pinned_host_key_but_no_secret(api, viewer_a, ssh_row, sftp_server):
    creds = api(viewer_a).get(f"/api/v1/servers/{ssh_row.pk}").json()["credentials"]
    assert creds == {"host_key": sftp_server.host_key, "password": "[HIDDEN]", "username": sftp_server.username}


def test_operator_role_is_not_enough_even_with_membership_in_both(api, tenant_a, tenant_b, ssh_row):
    user = make_member(tenant_a, "dual", Role.OPERATOR)
    response = api(user).get("/api/v1/commands")
    assert response.status_code == 403
