"""Application bundle: two databases and a folder in one artifact, through the real pipeline."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

import pytest

from backups.engines.base import EngineError
from backups.engines.bundle import MANIFEST_NAME, bundle_restore, bundle_source, join_bundle_parts
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


def test_bundle_of_two_databases_and_a_folder_round_trips(pg_source, my_source, pg_db, my_db, tmp_path):
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


def _folder_with_big_file(tmp_path, size: int = 300_000):  # type: ignore[no-untyped-def]
    folder = tmp_path / "site"
    (folder / "img").mkdir(parents=True)
    (folder / "img" / "big.bin").write_bytes(os.urandom(size))
    (folder / "index.html").write_text("<h1>hi</h1>")
    return folder


def test_large_members_are_stored_in_parts_and_restore_whole(pg_source, pg_db, tmp_path):
    folder = _folder_with_big_file(tmp_path)
    bundle = bundle_source(
        [
            ("00-db.dump", lambda: pg_dump_source(pg_source)),
            ("01-files.tar", lambda: tar_source([folder], root=folder)),
            ("02-config.json", lambda: config_source({"a": 1})),
        ],
        segment_size=64 << 10,
    )
    data = _read_all(bundle)
    manifest = bundle.finish()
    assert manifest["format"] == "bp-bundle/2"
    entries = {m["name"]: m for m in manifest["members"]}
    assert entries["01-files.tar"]["parts"] == entries["01-files.tar"]["size"] // (64 << 10) + 1
    assert entries["02-config.json"]["parts"] == 0  # small: one entry under its own name

    # Offline: tar -x, then `cat name.* > name` gives the member the manifest describes.
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        parts = sorted(n for n in names if n.startswith("01-files.tar."))
        joined = b"".join(tar.extractfile(n).read() for n in parts)
    assert len(parts) == entries["01-files.tar"]["parts"] and "02-config.json" in names
    assert hashlib.sha256(joined).hexdigest() == entries["01-files.tar"]["sha256"]
    assert len(joined) == entries["01-files.tar"]["size"]

    target, out = pg_db(), tmp_path / "restored"
    result = bundle_restore(
        data,
        {"00-db.dump": lambda: pg_restore_sink(target), "01-files.tar": lambda: tar_restore_sink(out)},
    )
    assert result["members"]["01-files.tar"]["restored"]
    assert list(iter_tree(out)) == list(iter_tree(folder))
    assert pg_plain_dump(target) == pg_plain_dump(pg_source)

    # A download holds whole members again (sizes from the manifest).
    rejoined = b"".join(join_bundle_parts([data], manifest["members"]))
    with tarfile.open(fileobj=io.BytesIO(rejoined)) as tar:
        assert tar.getnames() == ["00-db.dump", "01-files.tar", "02-config.json", MANIFEST_NAME]
        assert tar.extractfile("01-files.tar").read() == joined
    assert bundle_restore(rejoined, {})["members"]["01-files.tar"]["sha256"] == entries["01-files.tar"]["sha256"]


def test_bundle_written_by_earlier_versions_still_restores(tmp_path):
    """bp-bundle/1: every member whole (it was spooled to disk first), sha256 in its header."""
    folder = _folder_with_big_file(tmp_path)
    inner = _read_all(tar_source([folder], root=folder))
    old = io.BytesIO()
    with tarfile.open(fileobj=old, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("00-files.tar")
        info.size, info.pax_headers = len(inner), {"BP.sha256": hashlib.sha256(inner).hexdigest()}
        tar.addfile(info, io.BytesIO(inner))
        manifest = json.dumps(
            {
                "format": "bp-bundle/1",
                "members": [{"name": "00-files.tar", "size": len(inner), "sha256": hashlib.sha256(inner).hexdigest()}],
            }
        ).encode()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    out = tmp_path / "restored"
    bundle_restore(old.getvalue(), {"00-files.tar": lambda: tar_restore_sink(out)})
    assert list(iter_tree(out)) == list(iter_tree(folder))


def _rewrite(data: bytes, change) -> bytes:  # type: ignore[no-untyped-def]
    rebuilt = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data)) as original,
        tarfile.open(fileobj=rebuilt, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for member in change(original.getmembers()):
            tar.addfile(member, original.extractfile(member))
    return rebuilt.getvalue()


def test_missing_or_reordered_parts_are_refused(tmp_path):
    folder = _folder_with_big_file(tmp_path)
    bundle = bundle_source([("files.tar", lambda: tar_source([folder], root=folder))], segment_size=64 << 10)
    data = _read_all(bundle)
    out = tmp_path / "out"
    swapped = _rewrite(data, lambda members: [members[1], members[0], *members[2:]])
    with pytest.raises(EngineError, match="out of order") as info:
        bundle_restore(swapped, {"files.tar": lambda: tar_restore_sink(out)})
    assert info.value.code == "invalid_bundle" and not out.exists()
    without_last = _rewrite(data, lambda members: members[:-2] + members[-1:])
    with pytest.raises(EngineError, match="ends without its last part"):
        bundle_restore(without_last, {"files.tar": lambda: tar_restore_sink(out)})
    assert not out.exists()
    without_middle = _rewrite(data, lambda members: members[:1] + members[2:])
    with pytest.raises(EngineError, match="out of order"):
        bundle_restore(without_middle, {})


def test_a_failing_member_fails_the_bundle_before_its_last_part(tmp_path):
    class Failing:
        info: dict = {}

        def __init__(self) -> None:
            self.blocks = [b"x" * 50_000] * 3

        def read(self, size: int = -1) -> bytes:
            return self.blocks.pop() if self.blocks else b""

        def finish(self) -> dict:
            raise EngineError("pg_dump: error: connection lost", code="dump_failed")

        def kill(self) -> None:
            pass

    bundle = bundle_source([("db.dump", Failing)], segment_size=64 << 10)
    with pytest.raises(EngineError, match="connection lost"):
        _read_all(bundle)
