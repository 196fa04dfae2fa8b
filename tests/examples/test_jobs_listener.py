"""api-layer.md's curl commands, run with curl against a running server (``python -m
backupplatform.serve``, what ``make run`` starts) whose second port is the jobs API's listener.
Only the host and port (``localhost:5000``) and the ids are replaced; the rest is the
document's command, character for character."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import docs
from .harness import check, request_of
from .test_api_layer import DEFAULT_IDS, DOCUMENT, SHAPES, TABLE

ROOT = Path(__file__).resolve().parents[2]
CURLS = [e for e in docs.examples(DOCUMENT) if e.host]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("curl"), reason="needs curl"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    """The platform's ASGI server on two free ports: ``(main, jobs)``."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        pytest.skip("the live server needs a database the test and server processes share (PostgreSQL)")
    main, jobs = free_port(), free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backupplatform.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    env.pop("JOBS_API_PORTS", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backupplatform.serve",
            "--port",
            str(main),
            "--jobs-port",
            str(jobs),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    for _ in range(150):
        try:
            socket.create_connection(("127.0.0.1", jobs), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield main, jobs
    proc.terminate()
    proc.wait(10)


class CurlAnswer:
    """What curl received, with the few parts of a Django response ``check`` reads."""

    def __init__(self, status: int, headers: dict[str, str], content: bytes):
        self.status_code, self.headers, self.content = status, headers, content

    def get(self, name: str, default=None):
        return self.headers.get(name.lower(), default)

    def json(self):
        return json.loads(self.content)


def curl(command: str, tmp_path: Path) -> CurlAnswer:
    body, head = tmp_path / "body", tmp_path / "head"
    words = shlex.split(command)
    out = subprocess.run(
        [*words, "-s", "-o", str(body), "-D", str(head), "-w", "%{http_code}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    headers = {}
    for line in head.read_text().splitlines()[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return CurlAnswer(int(out.stdout or 0), headers, body.read_bytes())


def written_command(example) -> str:
    """The example's curl command as the document writes it."""
    text = (docs.SEEDS / DOCUMENT).read_text().splitlines()
    for _start, command in docs.curl_commands("\n".join(text[example.line - 1 :])):
        return command
    raise AssertionError(example.key)


def test_documented_curl_commands_run_against_the_jobs_listener(server, fresh_world, tmp_path):
    """Each command in the document's order, in one world (one server start for all); then the
    main listener's side of the same paths."""
    main, jobs = server
    world = fresh_world
    ran = []
    for example in CURLS:
        row = TABLE[example.key]
        for kind in row.needs:
            world.get(kind)
        if row.setup is not None:
            row.setup(world)
        path, _headers, _body = request_of(example, row, world, DEFAULT_IDS)
        command = written_command(example).replace(f"http://{example.host}", f"http://127.0.0.1:{jobs}")
        # Ids in the path, and the credentials the document writes as placeholders.
        command = command.replace(example.url_path, path.split("?")[0], 1)
        command = re.sub(r"\{(access_token|token)\}", world.token, command).replace("{api_key}", world.api_key)
        answer = curl(command, tmp_path)
        check(example, row, answer, expected_status=row.status or 200, documented=SHAPES.get(row.shape))
        if row.then is not None:
            row.then(world, answer)
        ran.append(example.key)
    assert len(ran) == len(CURLS) == 8

    # The main listener keeps db-backup-platform.md's /api/v1/backups (``total``/``items``), and
    # the jobs API at /api/v1/jobs there (only there).
    auth = f"-H 'Authorization: Bearer {world.token}'"
    platform = curl(f"curl http://127.0.0.1:{main}/api/v1/backups {auth}", tmp_path).json()
    assert set(platform) == {"total", "items"}
    alias = curl(f"curl http://127.0.0.1:{main}/api/v1/jobs {auth}", tmp_path).json()
    assert alias["success"] is True and {"Nightly files", "Database Backup"} <= {job["name"] for job in alias["data"]}
    on_jobs = curl(f"curl http://127.0.0.1:{jobs}/api/v1/backups {auth}", tmp_path).json()
    assert on_jobs["data"] == alias["data"]
    unknown = curl(f"curl http://127.0.0.1:{jobs}/api/v1/jobs {auth}", tmp_path)
    assert unknown.status_code == 404 and unknown.json()["success"] is False
