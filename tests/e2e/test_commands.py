"""The CLI: backup, verify, restore with progress bars; exportkey; decrypt with no database."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from backups.models import Backup

from .conftest import needs_pg, pg_dump_text

pytestmark = [pytest.mark.django_db(transaction=True), needs_pg]
ROOT = Path(__file__).resolve().parents[2]


def test_backup_verify_restore_commands(tenant_a, pg_server_row, local_storage, pg_source_db, cleanup_pg, capsys):
    call_command("backup", "--tenant", "alpha", "--server", str(pg_server_row.pk), "--database", pg_source_db)
    backup = Backup.objects.get()
    assert backup.status == "completed"
    assert f"Backup {backup.pk} completed" in capsys.readouterr().out
    call_command("verify", str(backup.pk), "--type", "decrypt")
    assert "verified" in capsys.readouterr().out
    target = f"{pg_source_db}_cli"
    cleanup_pg.append(target)
    call_command("restore", str(backup.pk), "--target-database", target)
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)
    assert set(AuditEvent.objects.filter(source="cli").values_list("action", flat=True)) >= {
        "backup_create",
        "verify_create",
        "restore_create",
    }


def test_commands_refuse_bad_arguments(tenant_a, pg_server_row):
    with pytest.raises(CommandError, match="No tenant"):
        call_command("backup", "--tenant", "nope", "--server", "1", "--database", "x")
    with pytest.raises(CommandError, match="not found"):
        call_command("backup", "--tenant", "alpha", "--server", "999999", "--database", "x")
    with pytest.raises(CommandError, match="No backup"):
        call_command("verify", "424242")
    with pytest.raises(CommandError, match="COLUMN=RULE"):
        call_command("restore", "1", "--mask", "email")


def test_exportkey_then_decrypt_without_any_database(tenant_a, pg_server_row, local_storage, pg_source_db, tmp_path):
    call_command(
        "backup",
        "--tenant",
        "alpha",
        "--server",
        str(pg_server_row.pk),
        "--database",
        pg_source_db,
        "--compression",
        "gzip",
    )
    backup = Backup.objects.get()
    key = tmp_path / "alpha.key.json"
    call_command("exportkey", "--tenant", "alpha", "--output", str(key))
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    artifact = Path(local_storage.configuration["path"]) / backup.storage_path
    env = dict(
        os.environ,
        DATABASE_URL="postgres://nobody@127.0.0.1:1/nothing",
        DJANGO_SETTINGS_MODULE="backupplatform.settings.test",
    )
    out = tmp_path / "dump"
    result = subprocess.run(
        [sys.executable, "manage.py", "decrypt", "--key-file", str(key), "--decompress", str(artifact), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(["pg_restore", "--list", str(out)], capture_output=True, text=True, check=True).stdout
    assert "TABLE DATA public customers" in listing
    artifact.write_bytes(artifact.read_bytes()[:-50])
    broken = subprocess.run(
        [sys.executable, "manage.py", "decrypt", "--key-file", str(key), str(artifact), str(tmp_path / "x")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert broken.returncode != 0 and "decrypt failed" in broken.stderr


def test_backup_progress_bar_shows_bytes_and_throughput(tenant_a, pg_server_row, local_storage, pg_source_db):
    out = io.StringIO()
    call_command(
        "backup", "--tenant", "alpha", "--server", str(pg_server_row.pk), "--database", pg_source_db, stdout=out
    )
    text = out.getvalue()
    backup = Backup.objects.get()
    assert backup.status == "completed"
    bar = next(line for line in text.splitlines() if line.startswith(f"backup {backup.pk} "))
    # "backup 7 ━━━ 100% 4.2 KB  310 KB/s  0:00:00 completed": human bytes and a rate, not "100/100 bytes"
    assert re.search(r"100%\s+\d+(\.\d)? (B|KB|MB)\s+\d+(\.\d)? (B|KB|MB|GB)/s", bar), text
    assert "/100" not in bar and "bytes" not in bar


def test_decrypt_unpacks_an_application_bundle(tmp_path):
    from backups.engines.bundle import bundle_source
    from backups.engines.config import config_source
    from backups.pipeline import backup_stream, export_key_file

    key = bytes(range(32))
    (tmp_path / "k.json").write_bytes(export_key_file(key, "alpha-1"))
    bundle = bundle_source([("00-config.json", lambda: config_source({"a": 1}))])
    with open(tmp_path / "app.bpaf", "wb") as artifact:
        backup_stream(bundle, artifact, data_key=key, key_id="alpha-1", payload="bp-bundle")
    bundle.finish()
    call_command(
        "decrypt", "--key-file", str(tmp_path / "k.json"), "--unpack", str(tmp_path / "out"), str(tmp_path / "app.bpaf")
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00-config.json", "manifest.json"]
