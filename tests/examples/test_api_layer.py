"""Every example of api-layer.md: its curl commands, sent as written to the jobs API's own
listener (ids replaced by real objects). ``test_jobs_listener.py`` runs them with curl against
a running server."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import make_member

from . import docs
from .harness import Row, parametrize, run_http, table_problems

DOCUMENT = "api-layer.md"
EXAMPLES = docs.examples(DOCUMENT)
SHAPES = docs.documented_shapes(DOCUMENT)
JOBS_PORT = 5000

# On this listener /api/v1/backups/{id} is a backup job; /verify/{id} names a backup.
DEFAULT_IDS = {"backups": "job", "verify": "app_backup"}
LOGIN = "a login answers with tokens, not a job"


def login_user(world) -> None:
    from tenants.models import Role

    user = make_member(world.tenant, "admin", Role.ADMIN)
    user.set_password("password")  # the document's (too weak for the API's own password checks)
    user.save()


def allow_the_documents_folder(world) -> None:
    """The platform operator gives the workspace the folder the example backs up (a tenant may
    read only its own folders: README, "Folders and outbound targets")."""
    world.tenant.path_roots = [*world.tenant.path_roots, "/var/lib/postgresql"]
    world.tenant.save(update_fields=["path_roots"])


def refused_as_smb(world, response) -> None:
    body = response.json()
    assert body["success"] is False and body["error"] == "UNSUPPORTED_PROVIDER", body
    assert "mount" in body["message"] and "sftp://" in body["details"]["supported"], body


# Made once for the module (conftest.py ``module_world``).
PRECREATE = ("job", "app_backup")

TABLE: dict[str, Row] = {
    "POST /api/v1/auth/login": Row(
        auth="none", setup=login_user, shape="Successful Response", absent={"data.id": LOGIN, "data.name": LOGIN}
    ),
    "GET /api/v1/backups": Row(needs=("job",), shape="Paginated Response"),
    "GET /api/v1/backups [2]": Row(needs=("job",), shape="Paginated Response", auth="api_key"),
    "POST /api/v1/backups": Row(status=201, shape="Successful Response", setup=allow_the_documents_folder),
    "GET /api/v1/backups?page=1&page_size=20&is_active=true": Row(needs=("job",), shape="Paginated Response"),
    "POST /api/v1/backups/1/run": Row(status=202),
    "POST /api/v1/verify/1": Row(status=202),
    # \\\\server\\backup is an SMB share, which the platform cannot reach itself: the documented
    # error body says how to give it (README, "What is served").
    "POST /api/v1/storage/test": Row(status=400, then=refused_as_smb),
}


def test_every_example_has_a_row():
    assert not table_problems(DOCUMENT, EXAMPLES, TABLE), "\n".join(table_problems(DOCUMENT, EXAMPLES, TABLE))


def test_every_example_names_the_jobs_listener():
    assert {e.host for e in EXAMPLES} == {f"localhost:{JOBS_PORT}"}


@pytest.mark.parametrize("example", parametrize("test_api_layer::test_example", DOCUMENT, EXAMPLES, TABLE, http=True))
def test_example(example, world, settings):
    settings.JOBS_API_PORTS = [JOBS_PORT]
    run_http(
        example,
        TABLE,
        world,
        APIClient(),
        defaults=DEFAULT_IDS,
        shapes=SHAPES,
        SERVER_PORT=str(JOBS_PORT),
        HTTP_HOST=example.host,
    )
