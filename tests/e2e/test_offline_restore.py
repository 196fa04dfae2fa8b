"""Restoring without the platform, as the README and docs/artifact-format.md say: the
standalone decryptor in a bare virtualenv (only ``cryptography`` and ``zstandard``), the
documented safe path for PostgreSQL, and artifacts that are tampered with."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import psycopg
import pymysql
import pytest
from django.core.management import call_command

from backups.keys import tenant_key_export
from backups.models import Application, Backup, Server, Source
from backups.services.backups import backup_start
from backups.tasks import run_backup

from .conftest import MY, PG, needs_mysql, needs_pg, pg_drop, pg_dump_text
from .test_postgres_roundtrip import backup_through_api, split_chunks
from .test_storages_and_applications import mysql_checksums, mysql_source_db  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]
DECRYPTOR = ROOT / "backups" / "pipeline" / "decrypt_cli.py"


def pinned(package: str) -> str:
    for line in (ROOT / "requirements" / "base.txt").read_text().splitlines():
        if line.lower().startswith(f"{package}=="):
            return line.strip()
    raise AssertionError(f"{package} is not pinned in requirements/base.txt")


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory) -> Path:
    """A virtualenv with nothing but the two packages the decryptor needs."""
    venv = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--disable-pip-version-check",
            pinned("cryptography"),
            pinned("zstandard"),
        ],
        check=True,
        capture_output=True,
    )
    listed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=json"], check=True, capture_output=True, text=True
    ).stdout
    assert {p["name"].lower() for p in json.loads(listed)} <= {
        "cryptography",
        "zstandard",
        "cffi",
        "pycparser",
        "pip",
        "setuptools",
    }
    return venv / "bin" / "python"


@pytest.fixture
def offline_dir(tmp_path, admin_a, tenant_a) -> Path:
    """A folder holding only the decryptor (copied alone) and the tenant's exported key ring."""
    folder = tmp_path / "offline"
    folder.mkdir()
    shutil.copy(DECRYPTOR, folder / "decrypt_cli.py")
    call_command("exportkey", "--tenant", "alpha", "--output", str(folder / "alpha.keys.json"), stdout=io.StringIO())
    return folder


def offline_env(bare_python: Path) -> dict[str, str]:
    """Only the bare virtualenv on PATH as `python3` (no PYTHONPATH, nothing of the platform)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO", "VIRTUAL_ENV"))}
    env["PATH"] = f"{bare_python.parent}:{env['PATH']}"
    env.update(PGHOST=PG["host"], PGPORT=str(PG["port"]), PGUSER=PG["user"])
    return env


def decrypt(bare_python: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bare_python), "-I", "decrypt_cli.py", "--key-file", "alpha.keys.json", *args],
        cwd=folder,
        capture_output=True,
        env=offline_env(bare_python),
    )


def pg_exists(name: str) -> bool:
    with psycopg.connect(dbname="postgres", **PG) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def readme_script(name: str) -> str:
    """The bash block of the README that starts with ``# <name>``."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"```bash\n(#!/bin/bash\n# " + re.escape(name) + r".*?)```", text, re.S)
    assert found, f"README has no bash block for {name}"
    return found.group(1)


# --- the README's safe path on a damaged artifact -----------------------------------------------


@pytest.fixture
def three_table_db():
    """Two small tables, then a big one whose data spans several 1 MiB chunks."""
    name = "bp_offline_src"
    pg_drop(name)
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    with psycopg.connect(dbname=name, **PG) as conn:
        conn.execute("CREATE TABLE a_small AS SELECT n FROM generate_series(1, 100) n")
        conn.execute("CREATE TABLE b_small AS SELECT n, md5(n::text) AS h FROM generate_series(1, 100) n")
        conn.execute(
            "CREATE TABLE c_big AS SELECT n, decode(md5(random()::text) || md5(random()::text) || "
            "md5(random()::text) || md5(random()::text), 'hex') AS blob FROM generate_series(1, 80000) n"
        )
    yield name
    pg_drop(name)


def tampered_copy(artifact: Path, folder: Path) -> Path:
    """The artifact with one bit flipped in its last chunk: everything before it authenticates."""
    data = bytearray(artifact.read_bytes())
    chunks = split_chunks(bytes(data))
    assert len(chunks) >= 3, "the artifact should span several chunks"
    data[len(data) - len(chunks[-1]) + 20] ^= 0x01
    target = folder / "tampered.dump.bpaf"
    target.write_bytes(bytes(data))
    return target


def table_counts(name: str) -> dict[str, int]:
    with psycopg.connect(dbname=name, **PG) as conn:
        tables = [
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
        ]
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@needs_pg
def test_the_readme_path_leaves_nothing_behind_on_a_tampered_artifact(
    api, admin_a, pg_server_row, local_storage, three_table_db, offline_dir, bare_python, cleanup_pg
):
    backup = backup_through_api(api, admin_a, pg_server_row, three_table_db, compression="zstd")
    assert backup.status == "completed", backup.error_message
    tampered = tampered_copy(Path(local_storage.configuration["path"]) / backup.storage_path, offline_dir)
    script = offline_dir / "restore-postgres.sh"
    script.write_text(readme_script("restore-postgres.sh"))
    env = offline_env(bare_python)
    target = "bp_offline_target"
    cleanup_pg.extend([target, "bp_offline_unsafe"])
    pg_drop(target)

    # The check stops it before anything is created.
    done = subprocess.run(
        ["bash", str(script), "alpha.keys.json", tampered.name, target],
        cwd=offline_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "chunk" in done.stderr and "failed authentication" in done.stderr
    assert not pg_exists(target)

    # Without step 1 (say the artifact changed after it was checked), step 3 is all or nothing:
    # pg_restore rolls back when the stream stops short, and the new database is dropped.
    without_check = script.read_text().replace('python3 decrypt_cli.py --key-file "$keys" --check "$artifact"', ":")
    assert without_check != script.read_text()
    (offline_dir / "no-check.sh").write_text(without_check)
    done = subprocess.run(
        ["bash", "no-check.sh", "alpha.keys.json", tampered.name, target],
        cwd=offline_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0, done.stderr
    assert not pg_exists(target)

    # What the safe path prevents: the plain pipe restores the tables before the damage.
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute("CREATE DATABASE bp_offline_unsafe")
    subprocess.run(
        f"python3 decrypt_cli.py --key-file alpha.keys.json --decompress {tampered.name} - "
        "| pg_restore --no-owner -d bp_offline_unsafe",
        shell=True,
        cwd=offline_dir,
        env=env,
        capture_output=True,
    )
    half = table_counts("bp_offline_unsafe")
    assert half.get("a_small") == 100 and half.get("b_small") == 100 and half.get("c_big", 0) < 80000

    # And with the intact artifact the same script restores everything.
    intact = offline_dir / "intact.dump.bpaf"
    shutil.copy(Path(local_storage.configuration["path"]) / backup.storage_path, intact)
    done = subprocess.run(
        ["bash", str(script), "alpha.keys.json", intact.name, target],
        cwd=offline_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "payload pg_dump-custom" in done.stderr
    assert pg_dump_text(target) == pg_dump_text(three_table_db)


def test_check_writes_nothing_and_its_exit_status_says_it(api, admin_a, tenant_a, offline_dir, bare_python, tmp_path):
    from io import BytesIO

    from backups.keys import tenant_current_key
    from backups.pipeline import backup_stream

    key_id, key = tenant_current_key(tenant_a)
    sink = BytesIO()
    backup_stream(BytesIO(os.urandom(3_000_000)), sink, data_key=key, key_id=key_id, compression="gzip", payload="tar")
    (offline_dir / "ok.tar.bpaf").write_bytes(sink.getvalue())
    bad = bytearray(sink.getvalue())
    bad[-30] ^= 0x01
    (offline_dir / "bad.tar.bpaf").write_bytes(bytes(bad))
    before = sorted(p.name for p in offline_dir.iterdir())

    ok = decrypt(bare_python, offline_dir, "--check", "ok.tar.bpaf")
    assert ok.returncode == 0, ok.stderr
    summary = ok.stderr.decode()
    assert "complete and authentic" in summary and "payload tar" in summary
    assert hashlib.sha256(sink.getvalue()).hexdigest() in summary
    assert ok.stdout == b""
    failed = decrypt(bare_python, offline_dir, "--check", "bad.tar.bpaf")
    assert failed.returncode == 1 and b"failed authentication" in failed.stderr and failed.stdout == b""
    assert sorted(p.name for p in offline_dir.iterdir()) == before
    usage = decrypt(bare_python, offline_dir, "--check", "ok.tar.bpaf", "out")
    assert usage.returncode == 2


def test_a_key_ring_is_matched_by_key_id_and_a_missing_key_is_named(api, admin_a, tenant_a, offline_dir, bare_python):
    from io import BytesIO

    from backups.keys import tenant_current_key, tenant_key_rotate
    from backups.pipeline import backup_stream

    old_ring = (offline_dir / "alpha.keys.json").read_bytes()
    tenant_key_rotate(tenant=tenant_a)
    key_id, key = tenant_current_key(tenant_a)
    sink = BytesIO()
    backup_stream(BytesIO(b"after the rotation"), sink, data_key=key, key_id=key_id, compression="zstd")
    (offline_dir / "new.bpaf").write_bytes(sink.getvalue())
    refused = decrypt(bare_python, offline_dir, "--check", "new.bpaf")  # the ring exported before
    assert refused.returncode == 1
    assert f"wrong key: this artifact was encrypted with key {key_id!r}" in refused.stderr.decode()
    (offline_dir / "old.keys.json").write_bytes(old_ring)
    _, ring = tenant_key_export(tenant=tenant_a)
    (offline_dir / "alpha.keys.json").write_bytes(ring)
    done = decrypt(bare_python, offline_dir, "--key-file", "old.keys.json", "--decompress", "new.bpaf", "-")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"after the rotation"


# --- the standalone decryptor in a bare virtualenv, per payload ------------------------------------


@needs_pg
def test_bare_virtualenv_restores_postgres_with_pg_restore(
    api, admin_a, pg_server_row, local_storage, pg_source_db, offline_dir, bare_python, cleanup_pg
):
    backup = backup_through_api(api, admin_a, pg_server_row, pg_source_db, compression="zstd")
    shutil.copy(Path(local_storage.configuration["path"]) / backup.storage_path, offline_dir / "db.dump.bpaf")
    assert decrypt(bare_python, offline_dir, "--check", "db.dump.bpaf").returncode == 0
    done = decrypt(bare_python, offline_dir, "--decompress", "db.dump.bpaf", "db.dump")
    assert done.returncode == 0, done.stderr
    target = f"{pg_source_db}_bare"
    cleanup_pg.append(target)
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(f'CREATE DATABASE "{target}"')
    subprocess.run(
        ["pg_restore", "--single-transaction", "--no-owner", "-d", target, "db.dump"],
        check=True,
        cwd=offline_dir,
        env=offline_env(bare_python),
    )
    assert pg_dump_text(target) == pg_dump_text(pg_source_db)


@needs_mysql
def test_bare_virtualenv_restores_mariadb_with_mysql(
    api,
    admin_a,
    tenant_a,
    local_storage,
    mysql_source_db,  # noqa: F811
    offline_dir,
    bare_python,
):
    server = Server.objects.create(
        tenant=tenant_a,
        name="maria",
        type="mysql",
        host=MY["host"],
        port=MY["port"],
        credentials={"username": MY["user"], "password": ""},
    )
    op = backup_start(
        tenant=tenant_a,
        actor=admin_a,
        server=server,
        database_name=mysql_source_db,
        storage=local_storage,
        compression="gzip",
    )
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    shutil.copy(Path(local_storage.configuration["path"]) / backup.storage_path, offline_dir / "db.sql.bpaf")
    checked = decrypt(bare_python, offline_dir, "--check", "db.sql.bpaf")
    assert checked.returncode == 0 and b"payload sql" in checked.stderr
    assert decrypt(bare_python, offline_dir, "--decompress", "db.sql.bpaf", "db.sql").returncode == 0
    target = f"{mysql_source_db}_copy"  # dropped by the fixture
    conn = pymysql.connect(autocommit=True, **MY)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{target}`")
    conn.close()
    with open(offline_dir / "db.sql", "rb") as dump:
        subprocess.run(
            ["mysql", "-h", MY["host"], "-P", str(MY["port"]), "-u", MY["user"], target], stdin=dump, check=True
        )
    assert mysql_checksums(target) == mysql_checksums(mysql_source_db)


def test_bare_virtualenv_restores_a_folder_application_with_tar(
    admin_a, tenant_a, local_storage, tmp_path, offline_dir, bare_python
):
    folder = tmp_path / "site"
    (folder / "uploads").mkdir(parents=True)
    (folder / "uploads" / "photo.bin").write_bytes(os.urandom(5 << 20))  # more than a 4 MiB segment
    (folder / "index.html").write_text("<h1>hello</h1>\n" * 1000)
    app = Application.objects.create(tenant=tenant_a, name="site")
    Source.objects.create(tenant=tenant_a, application=app, name="files", type="path", path=str(folder))
    op = backup_start(tenant=tenant_a, actor=admin_a, application=app, storage=local_storage, compression="gzip")
    run_backup(op.pk)
    backup = Backup.objects.get(pk=op.backup_id)
    assert backup.status == "completed", backup.error_message
    assert backup.manifest["payload"] == "bp-bundle"
    shutil.copy(Path(local_storage.configuration["path"]) / backup.storage_path, offline_dir / "app.tar.bpaf")
    checked = decrypt(bare_python, offline_dir, "--check", "app.tar.bpaf")
    assert checked.returncode == 0 and b"payload bp-bundle" in checked.stderr
    assert decrypt(bare_python, offline_dir, "--decompress", "app.tar.bpaf", "app.tar").returncode == 0

    # As docs/artifact-format.md "Application bundle" says: unpack, join a member stored in
    # parts (cat NAME.* > NAME), check members against the manifest, then unpack the folder's
    # own tar (names relative to /).
    bundle = offline_dir / "bundle"
    bundle.mkdir()
    subprocess.run(["tar", "-xf", str(offline_dir / "app.tar"), "-C", str(bundle)], check=True)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["format"] == "bp-bundle/2" and manifest["members"][0]["parts"] == 2
    for member in manifest["members"]:
        if member["parts"]:
            subprocess.run(f'cat "{member["name"]}".* > "{member["name"]}"', shell=True, check=True, cwd=bundle)
        assert hashlib.sha256((bundle / member["name"]).read_bytes()).hexdigest() == member["sha256"]
    with tarfile.open(offline_dir / "app.tar") as outer:
        last_part = outer.getmembers()[1]
        assert last_part.pax_headers["BP.sha256"] == manifest["members"][0]["sha256"]

    # Or in one step: --unpack writes the members whole, checked, into a new folder.
    unpacked = decrypt(bare_python, offline_dir, "--unpack", "unpacked", "app.tar.bpaf")
    assert unpacked.returncode == 0, unpacked.stderr
    assert sorted(p.name for p in (offline_dir / "unpacked").iterdir()) == ["00-files.tar", "manifest.json"]
    assert (offline_dir / "unpacked" / "00-files.tar").read_bytes() == (bundle / "00-files.tar").read_bytes()
    source = next(s for s in manifest["sources"] if s["type"] == "path")
    restored = offline_dir / "restored"
    restored.mkdir()
    depth = len(Path(source["path"]).parts) - 1  # "/tmp/.../site" -> strip the folder's own path
    subprocess.run(
        ["tar", "-xf", str(bundle / source["member"]), "-C", str(restored), f"--strip-components={depth}"], check=True
    )
    for original in folder.rglob("*"):
        if original.is_file():
            assert (restored / original.relative_to(folder)).read_bytes() == original.read_bytes()


def test_the_reference_decryptor_of_the_document_chooses_the_ring_key_by_key_id(tenant_a, offline_dir, bare_python):
    from io import BytesIO

    from backups.keys import tenant_current_key, tenant_key_rotate
    from backups.pipeline import backup_stream, generate_data_key

    document = (ROOT / "docs" / "artifact-format.md").read_text()
    code = re.search(r"```python\n(# bpaf_decrypt\.py.*?)```", document, re.S).group(1)
    (offline_dir / "bpaf_decrypt.py").write_text(code)
    key_id, key = tenant_current_key(tenant_a)
    sink = BytesIO()
    backup_stream(BytesIO(b"row\n" * 50_000), sink, data_key=key, key_id=key_id, compression="gzip", chunk_size=4096)
    (offline_dir / "x.bpaf").write_bytes(sink.getvalue())
    tenant_key_rotate(tenant=tenant_a)  # the ring's first and current key is now another one
    call_command("exportkey", "--tenant", "alpha", "--output", str(offline_dir / "ring.json"), stdout=io.StringIO())
    done = subprocess.run(
        [str(bare_python), "-I", "bpaf_decrypt.py", "ring.json", "x.bpaf"], cwd=offline_dir, capture_output=True
    )
    assert done.returncode == 0, done.stderr
    assert subprocess.run(["gunzip", "-c"], input=done.stdout, capture_output=True).stdout == b"row\n" * 50_000

    stranger = BytesIO()
    backup_stream(BytesIO(b"x"), stranger, data_key=generate_data_key(), key_id="bravo-0000", compression="none")
    (offline_dir / "y.bpaf").write_bytes(stranger.getvalue())
    refused = subprocess.run(
        [str(bare_python), "-I", "bpaf_decrypt.py", "ring.json", "y.bpaf"],
        cwd=offline_dir,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0 and "needs key 'bravo-0000'" in refused.stderr and refused.stdout == ""
