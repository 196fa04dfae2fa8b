"""The worst day, for real: a platform started without its master key refuses to start (checks,
ASGI server, worker) and never makes a new one; a platform rebuilt from nothing but its
database and the exported key files restores old backups; backups made before and after
each key rotation all restore, verify and decrypt offline."""

from __future__ import annotations

import base64
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from backups import keys
from backups.models import Operation, Restore, TenantKey
from backups.pipeline import master_key_fingerprint
from backups.tasks import run_restore, run_verify

from .conftest import PG, needs_pg, pg_dump_text
from .test_postgres_roundtrip import backup_through_api

pytestmark = [pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
OLD = base64.urlsafe_b64encode(b"o" * 32).decode()
NEW = base64.urlsafe_b64encode(b"n" * 32).decode()


def local_mode_env(key_file: Path) -> dict[str, str]:
    """``make run``'s settings against the test database, the master key in ``key_file``."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO")}
    env.update(
        DJANGO_SETTINGS_MODULE="backupplatform.settings.local",
        BACKUP_MASTER_KEY="",
        BACKUP_MASTER_KEY_FILE=str(key_file),
        SECRET_KEY="x" * 50,
        FIELD_ENCRYPTION_KEY="6q3Y8kS0b2t3wqJmX7vZ6p1y9hNnR4uVdC5eF8gH0iA=",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        CELERY_WORKER_HIJACK_ROOT_LOGGER="false",
    )
    return env


def run(argv: list[str], env: dict[str, str], timeout: int = 90) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_without_its_master_key_the_platform_refuses_to_start_and_makes_no_new_key(settings, tenant_a, tmp_path):
    key_file = tmp_path / "keys" / "master_key"
    settings.BACKUP_MASTER_KEY, settings.BACKUP_MASTER_KEY_FILE = "", str(key_file)
    keys.tenant_current_key(tenant_a)  # the platform's first key: the key file is made now
    fingerprint = master_key_fingerprint(keys.configured_master_keys()[0])
    key_file.rename(tmp_path / "moved-away")  # var/keys/master_key moved away
    env = local_mode_env(key_file)

    checked = run([sys.executable, "manage.py", "check"], env)
    assert checked.returncode != 0
    assert "backups.E001" in checked.stderr and fingerprint in checked.stderr and str(key_file) in checked.stderr
    assert "importkey" in checked.stderr

    exported = run(
        [sys.executable, "manage.py", "exportkey", "--tenant", "alpha", "--output", str(tmp_path / "k.json")], env
    )
    assert exported.returncode != 0 and fingerprint in exported.stderr
    assert not (tmp_path / "k.json").exists()

    server = run(
        [sys.executable, "-m", "uvicorn", "backupplatform.asgi:application", "--port", "0", "--lifespan", "on"], env
    )
    assert server.returncode != 0
    assert fingerprint in server.stderr + server.stdout

    worker = run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "backupplatform",
            "worker",
            "--pool=solo",
            "-n",
            f"keys-{os.getpid()}@%h",
        ],
        env,
    )
    assert worker.returncode != 0
    assert "Refusing to start the worker" in worker.stderr + worker.stdout
    assert fingerprint in worker.stderr + worker.stdout

    assert not key_file.exists()  # nothing generated a new master key on the way
    (tmp_path / "moved-away").rename(key_file)
    assert run([sys.executable, "manage.py", "check"], env).returncode == 0


@pytest.fixture
def old_master(settings):
    settings.BACKUP_MASTER_KEY = OLD
    return settings


def restore_into_new_database(api, user, backup, target: str) -> Restore:
    response = api(user).post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
    assert response.status_code == 201, response.content
    restore = Restore.objects.get(pk=response.json()["restore_id"])
    run_restore(restore.operation_id)
    restore.refresh_from_db()
    return restore


def verify_decrypt(api, user, backup) -> bool:
    response = api(user).post(f"/api/v1/verify/{backup.pk}", {"test_type": "decrypt"}, format="json")
    assert response.status_code == 202, response.content
    run_verify(Operation.objects.filter(kind="verify").latest("id").pk)
    return api(user).get(f"/api/v1/verify/{backup.pk}/result").json()["data"]["passed"]


@needs_pg
def test_importkey_on_a_fresh_platform_database_restores_an_old_backup(
    old_master, api, admin_a, tenant_a, pg_server_row, local_storage, pg_source_db, cleanup_pg, tmp_path
):
    backup = backup_through_api(api, admin_a, pg_server_row, pg_source_db)
    assert backup.status == "completed", backup.error_message
    ring = tmp_path / "alpha.keys.json"
    call_command("exportkey", "--tenant", "alpha", "--output", str(ring), stdout=io.StringIO())

    # The platform is rebuilt: its tables come back without any tenant key, its master key is new.
    TenantKey.objects.all().delete()
    old_master.BACKUP_MASTER_KEY = NEW
    failed = restore_into_new_database(api, admin_a, backup, f"{pg_source_db}_lost")
    cleanup_pg.append(f"{pg_source_db}_lost")
    assert failed.status == "failed" and "importkey" in failed.error_message

    call_command("importkey", str(ring), stdout=io.StringIO())
    target = f"{pg_source_db}_rebuilt"
    cleanup_pg.append(target)
    restore = restore_into_new_database(api, admin_a, backup, target)
    assert restore.status == "completed", restore.error_message
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)
    assert verify_decrypt(api, admin_a, backup) is True


@needs_pg
def test_backups_before_and_after_each_rotation_restore_verify_and_decrypt_offline(
    old_master, api, admin_a, tenant_a, pg_server_row, local_storage, pg_source_db, cleanup_pg, tmp_path
):
    made = []

    def backup_now(label: str):
        with psycopg.connect(dbname=pg_source_db, **PG) as conn:
            conn.execute("INSERT INTO customers (email) VALUES (%s)", (f"{label}@example.com",))
        backup = backup_through_api(api, admin_a, pg_server_row, pg_source_db)
        assert backup.status == "completed", backup.error_message
        made.append((label, backup, pg_dump_text(pg_source_db)))

    backup_now("first")
    call_command("rotatekey", "--tenant", "alpha", stdout=io.StringIO())
    backup_now("after-tenant-rotation")
    old_master.BACKUP_MASTER_KEY = f"{NEW},{OLD}"
    call_command("rotatemasterkey", stdout=io.StringIO())
    old_master.BACKUP_MASTER_KEY = NEW  # the old master key is gone for good
    backup_now("after-master-rotation")
    assert len({b.key_id for _, b, _ in made}) == 2  # the master rotation keeps the data key

    ring = tmp_path / "alpha.keys.json"
    call_command("exportkey", "--tenant", "alpha", "--output", str(ring), stdout=io.StringIO())
    shutil.copy(ROOT / "backups" / "pipeline" / "decrypt_cli.py", tmp_path / "decrypt_cli.py")
    for label, backup, expected in made:
        target = f"{pg_source_db}_{label.replace('-', '_')}"
        cleanup_pg += [target, f"{target}_offline"]
        restore = restore_into_new_database(api, admin_a, backup, target)
        assert restore.status == "completed", (label, restore.error_message)
        assert pg_dump_text(target) == expected
        assert verify_decrypt(api, admin_a, backup) is True, label

        artifact = Path(local_storage.configuration["path"]) / backup.storage_path
        dump = tmp_path / f"{label}.dump"
        done = subprocess.run(
            [sys.executable, "-I", "decrypt_cli.py", "--key-file", str(ring), "--decompress", str(artifact), str(dump)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (label, done.stderr)
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
            conn.execute(f'CREATE DATABASE "{target}_offline"')
        subprocess.run(
            [
                "pg_restore",
                "-h",
                PG["host"],
                "-U",
                PG["user"],
                "--single-transaction",
                "--no-owner",
                "-d",
                f"{target}_offline",
                str(dump),
            ],
            check=True,
        )
        assert pg_dump_text(f"{target}_offline") == pg_dump_text(target)
