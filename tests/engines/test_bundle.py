"""Application bundle: two databases and a folder in one artifact, through the real pipeline."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from backups.engines.base import EngineError
from backups.engines.bundle import MANIFEST_NAME, bundle_restore, bundle_source
from backups.engines.config import config_restore_sink, config_source
from backups.engines.files import iter_tree, tar_restore_sink, tar_source
from backups.engines.mysql import mysql_restore_sink, mysqldump_source
from backups.engines.postgres import pg_dump_source, pg_restore_sink
from backups.pipeline.keys import generate_data_key
from backups.pipeline.stream import backup_stream, restore_stream

from .helpers import mysql_plain_dump, pg_plain_dump


def _read_all(source) -> bytes:  # type: ignore[no-untyped-def]
    with source:
        data = b"".join(iter(lambda: source.read(1 << 16), b""))
        source.finish()
    return data


def test_bundle_of_two_databases_and_a_folder_round_trips(
    pg_source, my_source, pg_db, my_db, tmp_path
):
    folder = tmp_path / "uploads"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "a.png").write_bytes(b"\x89PNG" + bytes(1000))
    config = {"application": "shop", "retention": {"days": 7}}
    bundle = bundle_source(
        [
            ("databases/main.pgdump", lambda: pg_dump_source(pg_source)),
            ("databases/legacy.sql", lambda: mysqldump_source(my_source)),
            ("files/uploads.tar", lambda: tar_source([folder], root=folder)),
            ("config.json", lambda: config_source(config)),
        ],
        {"application_id": "app-1"},
    )
    key = generate_data_key()
    artifact = io.BytesIO()
    with bundle:
        backup_stream(bundle, artifact, data_key=key, key_id="k1")
        manifest = bundle.finish()
    assert [m["name"] for m in manifest["members"]] == [
        "databases/main.pgdump",
        "databases/legacy.sql",
        "files/uploads.tar",
        "config.json",
    ]
    assert manifest["application_id"] == "app-1"
    pg_info = manifest["members"][0]["info"]
    assert pg_info["tool"] == "pg_dump" and pg_info["server_version"] and pg_info["tool_version"]
    assert all(len(m["sha256"]) == 64 and m["size"] > 0 for m in manifest["members"])

    pg_target, my_target, out = pg_db(), my_db(), tmp_path / "restored"
    artifact.seek(0)
    result = bundle_restore(
        restore_stream(artifact, key),
        {
            "databases/main.pgdump": lambda: pg_restore_sink(pg_target),
            "databases/legacy.sql": lambda: mysql_restore_sink(my_target),
            "files/uploads.tar": lambda: tar_restore_sink(out),
            "config.json": config_restore_sink,
        },
    )
    assert result["manifest"]["members"] == manifest["members"]
    assert result["members"]["config.json"]["result"]["config"] == config
    assert pg_plain_dump(pg_target) == pg_plain_dump(pg_source)
    assert mysql_plain_dump(my_target) == mysql_plain_dump(my_source)
    assert list(iter_tree(out)) == list(iter_tree(folder))


def _small_bundle(tmp_path) -> bytes:  # type: ignore[no-untyped-def]
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "data.txt").write_text("important data\n" * 100)
    return _read_all(
        bundle_source(
            [
                ("files.tar", lambda: tar_source([folder], root=folder)),
                ("config.json", lambda: config_source({"a": 1})),
            ]
        )
    )


def test_corrupted_member_is_detected_and_its_sink_aborted(tmp_path):
    data = bytearray(_small_bundle(tmp_path))
    with tarfile.open(fileobj=io.BytesIO(bytes(data))) as tar:
        member = tar.getmember("files.tar")
    data[member.offset_data + 600] ^= 0x01  # inside the inner tar's file data
    out = tmp_path / "out"
    with pytest.raises(EngineError, match=r"files\.tar.*corrupt") as info:
        bundle_restore(bytes(data), {"files.tar": lambda: tar_restore_sink(out)})
    assert info.value.code == "checksum_mismatch"
    assert not out.exists()


def test_member_not_matching_the_manifest_is_detected(tmp_path):
    rebuilt = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(_small_bundle(tmp_path))) as original,
        tarfile.open(fileobj=rebuilt, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in original.getmembers():
            payload = original.extractfile(member).read()
            if member.name == MANIFEST_NAME:
                manifest = json.loads(payload)
                manifest["members"][1]["sha256"] = "0" * 64
                payload = json.dumps(manifest).encode()
                member.size = len(payload)
            tar.addfile(member, io.BytesIO(payload))
    with pytest.raises(EngineError, match=r"config\.json: sha256/size differ from the manifest"):
        bundle_restore(rebuilt.getvalue(), {})


def test_unknown_handler_and_truncated_bundle(tmp_path):
    data = _small_bundle(tmp_path)
    with pytest.raises(EngineError, match="nope: no such member"):
        bundle_restore(data, {"nope": config_restore_sink})
    with pytest.raises(EngineError):
        bundle_restore(data[: len(data) // 2], {})


def test_invalid_member_names_are_refused():
    for name in ("/abs", "../x", MANIFEST_NAME, ""):
        with pytest.raises(EngineError, match="Invalid bundle member name"):
            bundle_source([(name, lambda: config_source({}))])
