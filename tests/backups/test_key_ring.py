"""Tenant key rings and the master key: a lost or wrong master key is never silent, rotations
keep old artifacts readable, key files put keys back on a rebuilt platform."""

from __future__ import annotations

import base64
import io
import json
import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from backups import keys
from backups.checks import check_backup_keys
from backups.models import TenantKey
from backups.pipeline import backup_stream, decrypt_cli, master_key_fingerprint, restore_stream

pytestmark = pytest.mark.django_db

OLD = base64.urlsafe_b64encode(b"o" * 32).decode()
NEW = base64.urlsafe_b64encode(b"n" * 32).decode()


def artifact_for(tenant, data: bytes) -> tuple[bytes, str]:
    key_id, key = keys.tenant_current_key(tenant)
    sink = io.BytesIO()
    backup_stream(io.BytesIO(data), sink, data_key=key, key_id=key_id, compression="zstd", payload="sql")
    return sink.getvalue(), key_id


def restored(tenant, artifact: bytes, key_id: str) -> bytes:
    return b"".join(restore_stream(io.BytesIO(artifact), keys.key_for_id(tenant, key_id)))


@pytest.fixture
def file_mode(settings, tmp_path):
    """Local mode: no BACKUP_MASTER_KEY, the key lives in a file."""
    settings.BACKUP_MASTER_KEY = ""
    settings.BACKUP_MASTER_KEY_FILE = str(tmp_path / "keys" / "master_key")
    return tmp_path / "keys" / "master_key"


def test_local_mode_creates_the_master_key_only_while_no_wrapped_key_exists(file_mode, tenant_a, tenant_b):
    assert not file_mode.exists()
    artifact, key_id = artifact_for(tenant_a, b"rows")  # first key of the platform: the file is created
    assert file_mode.exists() and oct(file_mode.stat().st_mode & 0o777) == "0o600"
    expected = master_key_fingerprint(keys.configured_master_keys()[0])

    moved = file_mode.with_name("moved-away")
    file_mode.rename(moved)
    # Before: a new master key was generated here, and every key failed "wrapped key failed
    # authentication" from then on. Now: a clear refusal, naming the key needed and where.
    with pytest.raises(keys.MasterKeyError) as refused:
        keys.tenant_current_key(tenant_b)  # even a tenant without keys gets none made
    message = str(refused.value)
    assert expected in message and str(file_mode) in message and "alpha" in message
    assert "importkey" in message
    with pytest.raises(keys.MasterKeyError):
        restored(tenant_a, artifact, key_id)
    assert not file_mode.exists()
    assert not TenantKey.objects.filter(tenant=tenant_b).exists()

    errors = check_backup_keys()
    assert [e.id for e in errors] == ["backups.E001"]
    assert expected in errors[0].msg and "importkey" in errors[0].hint

    moved.rename(file_mode)  # the right key back: everything opens again
    assert check_backup_keys() == []
    assert restored(tenant_a, artifact, key_id) == b"rows"


def test_a_wrong_master_key_names_the_one_the_keys_need(settings, tenant_a):
    settings.BACKUP_MASTER_KEY = OLD
    artifact_for(tenant_a, b"x")
    settings.BACKUP_MASTER_KEY = NEW
    errors = check_backup_keys()
    assert len(errors) == 1
    assert master_key_fingerprint(b"o" * 32) in errors[0].msg  # the key needed
    assert master_key_fingerprint(b"n" * 32) in errors[0].msg  # the key configured
    with pytest.raises(keys.MasterKeyError):
        keys.check_keys_at_start()


def test_rotating_a_tenant_key_keeps_old_artifacts_readable(settings, tenant_a, admin_a):
    first, first_id = artifact_for(tenant_a, b"before rotation")
    with pytest.raises(CommandError):
        call_command("rotatekey", "--tenant", "nope")
    out = io.StringIO()
    call_command("rotatekey", "--tenant", "alpha", stdout=out)
    second, second_id = artifact_for(tenant_a, b"after rotation")
    assert first_id != second_id and second_id in out.getvalue()
    assert restored(tenant_a, first, first_id) == b"before rotation"
    assert restored(tenant_a, second, second_id) == b"after rotation"
    ring = TenantKey.objects.filter(tenant=tenant_a)
    assert ring.count() == 2 and ring.get(is_current=True).key_id == second_id
    assert ring.get(key_id=first_id).retired_at is not None
    assert AuditEvent.objects.filter(action="key_rotate", tenant=tenant_a).exists()

    with pytest.raises(keys.KeyNotInRing, match="importkey"):
        keys.key_for_id(tenant_a, "alpha-unknown")


def test_master_key_rotation_accepts_old_and_new_then_needs_only_new(settings, tenant_a, tenant_b):
    settings.BACKUP_MASTER_KEY = OLD
    a1, a1_id = artifact_for(tenant_a, b"a1")
    call_command("rotatekey", "--tenant", "alpha", stdout=io.StringIO())
    a2, a2_id = artifact_for(tenant_a, b"a2")
    b1, b1_id = artifact_for(tenant_b, b"b1")

    settings.BACKUP_MASTER_KEY = f"{NEW},{OLD}"  # during the change both are accepted
    assert check_backup_keys() == []
    assert restored(tenant_a, a1, a1_id) == b"a1"
    out = io.StringIO()
    call_command("rotatemasterkey", stdout=out)
    assert "3 key(s) re-wrapped" in out.getvalue()
    assert set(TenantKey.objects.values_list("master_fingerprint", flat=True)) == {master_key_fingerprint(b"n" * 32)}

    settings.BACKUP_MASTER_KEY = NEW  # the old master key is gone
    assert check_backup_keys() == []
    assert restored(tenant_a, a1, a1_id) == b"a1"
    assert restored(tenant_a, a2, a2_id) == b"a2"
    assert restored(tenant_b, b1, b1_id) == b"b1"


def test_master_key_rotation_refuses_keys_it_cannot_open_unless_told_to_abandon(settings, tenant_a, tenant_b):
    settings.BACKUP_MASTER_KEY = OLD
    artifact_for(tenant_a, b"a")
    settings.BACKUP_MASTER_KEY = NEW
    artifact_for(tenant_b, b"b")  # wrapped by NEW
    with pytest.raises(CommandError, match=master_key_fingerprint(b"o" * 32)):
        call_command("rotatemasterkey", stdout=io.StringIO())
    assert check_backup_keys()
    out = io.StringIO()
    call_command("rotatemasterkey", "--abandon-unreadable", stdout=out)
    assert "Abandoned" in out.getvalue()
    assert check_backup_keys() == []
    # alpha gets a new current key for new backups; its old one waits for its key file.
    fresh, fresh_id = artifact_for(tenant_a, b"new")
    assert restored(tenant_a, fresh, fresh_id) == b"new"


def test_local_mode_generate_rotates_the_key_file_and_keeps_the_old_key_aside(file_mode, tenant_a):
    artifact, key_id = artifact_for(tenant_a, b"rows")
    old_key = file_mode.read_text().strip()
    out = io.StringIO()
    call_command("rotatemasterkey", "--generate", stdout=out)
    lines = file_mode.read_text().split()
    assert len(lines) == 1 and lines[0] != old_key
    retired = [p for p in file_mode.parent.iterdir() if p.name.startswith("master_key.retired-")]
    assert len(retired) == 1 and retired[0].read_text().split() == [old_key]
    assert oct(retired[0].stat().st_mode & 0o777) == "0o600"
    assert check_backup_keys() == []
    assert restored(tenant_a, artifact, key_id) == b"rows"


def test_export_writes_the_whole_ring_and_import_puts_it_back_on_an_empty_platform(settings, tenant_a, tmp_path):
    settings.BACKUP_MASTER_KEY = OLD
    old, old_id = artifact_for(tenant_a, b"old")
    call_command("rotatekey", "--tenant", "alpha", stdout=io.StringIO())
    new, new_id = artifact_for(tenant_a, b"new")
    ring_file = tmp_path / "alpha.keys.json"
    call_command("exportkey", "--tenant", "alpha", "--output", str(ring_file), stdout=io.StringIO())
    assert oct(ring_file.stat().st_mode & 0o777) == "0o600"
    document = json.loads(ring_file.read_text())
    assert document["type"] == "bpaf-key-ring" and document["tenant"] == "alpha"
    assert {k["key_id"] for k in document["keys"]} == {old_id, new_id}
    assert document["current_key_id"] == new_id
    event = AuditEvent.objects.get(action="key_export")
    assert all(k["key"] not in json.dumps(event.details) for k in document["keys"])  # no key material

    # The standalone decryptor reads both artifacts with the one ring file.
    for artifact, data in ((old, b"old"), (new, b"new")):
        path = tmp_path / "a.bpaf"
        path.write_bytes(artifact)
        assert decrypt_cli.main(["--key-file", str(ring_file), "--check", str(path)]) == 0
        out = tmp_path / "out.sql"
        out.unlink(missing_ok=True)
        assert decrypt_cli.main(["--key-file", str(ring_file), "--decompress", str(path), str(out)]) == 0
        assert out.read_bytes() == data

    # A rebuilt platform: no key rows, another master key.
    TenantKey.objects.all().delete()
    settings.BACKUP_MASTER_KEY = NEW
    out = io.StringIO()
    call_command("importkey", str(ring_file), stdout=out)
    assert "added" in out.getvalue() and "Every tenant key opens" in out.getvalue()
    assert restored(tenant_a, old, old_id) == b"old"
    assert restored(tenant_a, new, new_id) == b"new"
    assert TenantKey.objects.get(tenant=tenant_a, is_current=True).key_id == new_id
    assert AuditEvent.objects.filter(action="key_import", tenant=tenant_a).exists()


def test_import_rewraps_rows_restored_without_their_master_key(settings, tenant_a, tmp_path):
    settings.BACKUP_MASTER_KEY = OLD
    artifact, key_id = artifact_for(tenant_a, b"rows")
    ring_file = tmp_path / "ring.json"
    call_command("exportkey", "--tenant", "alpha", "--output", str(ring_file), stdout=io.StringIO())
    settings.BACKUP_MASTER_KEY = NEW  # the database came back, its master key did not
    assert check_backup_keys()
    out = io.StringIO()
    call_command("importkey", str(ring_file), "--tenant", "alpha", stdout=out)
    assert "rewrapped" in out.getvalue()
    assert check_backup_keys() == []
    assert restored(tenant_a, artifact, key_id) == b"rows"


def test_import_refuses_a_key_that_is_not_the_one_recorded_under_its_id(settings, tenant_a, tenant_b, tmp_path):
    settings.BACKUP_MASTER_KEY = OLD
    artifact_for(tenant_a, b"a")
    row = TenantKey.objects.get(tenant=tenant_a)
    forged = {
        "type": "bpaf-key-ring",
        "version": 1,
        "tenant": "alpha",
        "keys": [{"key_id": row.key_id, "key": base64.b64encode(os.urandom(32)).decode(), "current": True}],
    }
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    settings.BACKUP_MASTER_KEY = NEW
    with pytest.raises(CommandError, match="not the key the platform recorded"):
        call_command("importkey", str(path), stdout=io.StringIO())
    with pytest.raises(CommandError, match="belongs to tenant 'alpha'"):
        call_command("importkey", str(path), "--tenant", "bravo", stdout=io.StringIO())
    forged["tenant"] = "bravo"
    path.write_text(json.dumps(forged))
    with pytest.raises(CommandError, match="another tenant"):
        call_command("importkey", str(path), stdout=io.StringIO())
    with pytest.raises(CommandError, match="not valid JSON"):
        path.write_text("{")
        call_command("importkey", str(path), "--tenant", "alpha", stdout=io.StringIO())
    assert TenantKey.objects.filter(tenant=tenant_b).count() == 0


def test_local_mode_import_after_losing_the_key_file_makes_a_new_one_only_when_asked(file_mode, tenant_a, tmp_path):
    artifact, key_id = artifact_for(tenant_a, b"rows")
    ring_file = tmp_path / "ring.json"
    call_command("exportkey", "--tenant", "alpha", "--output", str(ring_file), stdout=io.StringIO())
    file_mode.unlink()
    with pytest.raises(CommandError, match="--generate-master-key"):
        call_command("importkey", str(ring_file), stdout=io.StringIO())
    assert not file_mode.exists()
    out = io.StringIO()
    call_command("importkey", str(ring_file), "--generate-master-key", stdout=out)
    assert file_mode.exists() and "rewrapped" in out.getvalue()
    assert check_backup_keys() == []
    assert restored(tenant_a, artifact, key_id) == b"rows"


def test_local_mode_without_any_key_file_starts_over_only_when_told_to_abandon(file_mode, tenant_a):
    artifact_for(tenant_a, b"rows")
    file_mode.unlink()
    with pytest.raises(CommandError, match="--generate makes one"):
        call_command("rotatemasterkey", "--abandon-unreadable", stdout=io.StringIO())
    with pytest.raises(CommandError, match="importkey"):
        call_command("rotatemasterkey", "--generate", stdout=io.StringIO())
    assert not file_mode.exists()
    out = io.StringIO()
    call_command("rotatemasterkey", "--generate", "--abandon-unreadable", stdout=out)
    assert "Abandoned" in out.getvalue() and "no old key to keep" in out.getvalue()
    assert file_mode.exists() and check_backup_keys() == []
    fresh, fresh_id = artifact_for(tenant_a, b"new")
    assert restored(tenant_a, fresh, fresh_id) == b"new"
