"""The standalone decryptor and the platform's reader agree on what docs/artifact-format.md
says: version 1 artifacts, the payload byte, multi-member gzip, key choice by key_id.

Pure Python, no Django: run with ``-p no:django``.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zlib
from pathlib import Path

import pytest

from backups.pipeline import (
    ArtifactCorrupt,
    Compression,
    RingKey,
    backup_stream,
    export_key_file,
    export_key_ring,
    restore_stream,
)
from backups.pipeline import decrypt_cli as cli
from backups.pipeline.crypto import ChunkSealer
from backups.pipeline.format import ArtifactHeader, derive_artifact_key

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def handmade(
    plaintext: bytes, *, version: int, payload: int, compression: Compression, key: bytes = KEY, key_id: str = "alpha-1"
) -> bytes:
    """An artifact built field by field from the document (as an older or newer writer would)."""
    salt, prefix = os.urandom(16), os.urandom(4)
    chunk_key, key_check = derive_artifact_key(key, salt)
    header = ArtifactHeader(
        compression=compression,
        chunk_size=1000,
        salt=salt,
        nonce_prefix=prefix,
        key_check=key_check,
        key_id=key_id,
        version=version,
        payload=payload,
    )
    sealer = ChunkSealer(header, chunk_key)
    out = bytearray(header.raw)
    pieces = [plaintext[i : i + 1000] for i in range(0, len(plaintext), 1000)] or [b""]
    for index, piece in enumerate(pieces):
        frame, sealed = sealer.seal(piece, final=index == len(pieces) - 1)
        out += frame + sealed
    return bytes(out)


def run(tmp_path: Path, artifact: bytes, *args: str, key: bytes = KEY, key_id: str = "alpha-1"):
    (tmp_path / "a.bpaf").write_bytes(artifact)
    (tmp_path / "k.json").write_bytes(export_key_file(key, key_id))
    return cli.main(
        [
            "--key-file",
            str(tmp_path / "k.json"),
            *args,
            str(tmp_path / "a.bpaf"),
            *([str(tmp_path / "out")] if "--check" not in args else []),
        ]
    )


def test_version_1_artifacts_stay_readable_by_both_readers(tmp_path: Path, capsys) -> None:
    old = handmade(gzip.compress(b"v1 rows\n" * 500), version=1, payload=0, compression=Compression.GZIP)
    assert old[4] == 1 and old[7] == 0
    assert b"".join(restore_stream(io.BytesIO(old), KEY)) == b"v1 rows\n" * 500
    assert run(tmp_path, old, "--check") == 0
    assert "payload unspecified" in capsys.readouterr().err
    assert run(tmp_path, old, "--decompress") == 0
    assert (tmp_path / "out").read_bytes() == b"v1 rows\n" * 500
    flagged = bytearray(old)
    flagged[7] = 1  # version 1 has no payload byte: a set flag is refused
    with pytest.raises(ArtifactCorrupt, match="unknown flags"):
        b"".join(restore_stream(io.BytesIO(bytes(flagged)), KEY))
    assert run(tmp_path, bytes(flagged), "--check") == 1


def test_the_header_names_the_payload_and_it_cannot_be_changed(tmp_path: Path, capsys) -> None:
    sink = io.BytesIO()
    result = backup_stream(
        io.BytesIO(b"-- dump\n"), sink, data_key=KEY, key_id="alpha-1", compression="zstd", payload="pg_dump-custom"
    )
    artifact = sink.getvalue()
    assert artifact[4] == 2 and artifact[7] == 1 and result.payload == "pg_dump-custom"
    assert run(tmp_path, artifact, "--check") == 0
    assert "payload pg_dump-custom (restore with: pg_restore --single-transaction" in capsys.readouterr().err
    relabelled = bytearray(artifact)
    relabelled[7] = 2  # "sql": the header is in every chunk's associated data
    assert run(tmp_path, bytes(relabelled), "--check") == 1
    assert "chunk 0 failed authentication" in capsys.readouterr().err


def test_an_unknown_payload_id_is_shown_and_still_decrypted(tmp_path: Path, capsys) -> None:
    artifact = handmade(b"future", version=2, payload=42, compression=Compression.NONE)
    assert b"".join(restore_stream(io.BytesIO(artifact), KEY)) == b"future"
    assert run(tmp_path, artifact, "--check") == 0
    assert "payload unknown (42)" in capsys.readouterr().err


def test_gzip_with_several_members_decompresses_to_their_concatenation(tmp_path: Path) -> None:
    stream = gzip.compress(b"first member\n" * 300) + gzip.compress(b"second member\n" * 300)
    artifact = handmade(stream, version=2, payload=2, compression=Compression.GZIP)
    expected = b"first member\n" * 300 + b"second member\n" * 300
    assert b"".join(restore_stream(io.BytesIO(artifact), KEY)) == expected
    assert run(tmp_path, artifact, "--check") == 0
    assert run(tmp_path, artifact, "--decompress") == 0
    assert (tmp_path / "out").read_bytes() == expected
    cut = handmade(stream[:-4], version=2, payload=2, compression=Compression.GZIP)  # last trailer cut short
    assert run(tmp_path, cut, "--check") == 1


def test_keys_are_chosen_by_key_id_across_several_files_and_rings(tmp_path: Path, capsys) -> None:
    artifact = handmade(
        zlib.compress(b"x"), version=2, payload=0, compression=Compression.NONE, key=OTHER, key_id="alpha-2"
    )
    ring = export_key_ring(
        [RingKey("alpha-3", os.urandom(32), current=True), RingKey("alpha-2", OTHER)],
        tenant="alpha",
        exported_at="2025-01-01T00:00:00+00:00",
    )
    (tmp_path / "ring.json").write_bytes(ring)
    (tmp_path / "single.json").write_bytes(export_key_file(KEY, "alpha-1"))
    (tmp_path / "a.bpaf").write_bytes(artifact)
    assert (
        cli.main(
            [
                "--key-file",
                str(tmp_path / "single.json"),
                "--key-file",
                str(tmp_path / "ring.json"),
                "--check",
                str(tmp_path / "a.bpaf"),
            ]
        )
        == 0
    )
    capsys.readouterr()

    # Only the single key: refused, naming the key it needs, before anything is decrypted.
    assert cli.main(["--key-file", str(tmp_path / "single.json"), "--check", str(tmp_path / "a.bpaf")]) == 1
    assert (
        "encrypted with key 'alpha-2', which is not in the key file(s) given (they hold 'alpha-1')"
        in capsys.readouterr().err
    )
    # The right id with the wrong key: key_check catches it.
    (tmp_path / "liar.json").write_bytes(export_key_file(KEY, "alpha-2"))
    assert cli.main(["--key-file", str(tmp_path / "liar.json"), "--check", str(tmp_path / "a.bpaf")]) == 1
    assert "does not match this artifact" in capsys.readouterr().err
    # Two files that disagree about one id are a key file error.
    assert (
        cli.main(
            [
                "--key-file",
                str(tmp_path / "liar.json"),
                "--key-file",
                str(tmp_path / "ring.json"),
                "--check",
                str(tmp_path / "a.bpaf"),
            ]
        )
        == 2
    )
    document = json.loads(ring)
    assert document["current_key_id"] == "alpha-3" and len(document["keys"]) == 2


class _BytesSource:
    """A source stream of fixed bytes (stands in for a dump)."""

    def __init__(self, data: bytes) -> None:
        self.info: dict = {"engine": "test"}
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)

    def finish(self) -> dict:
        return {}

    def kill(self) -> None:
        pass


def _bundle_artifact(members: dict[str, bytes], *, segment_size: int = 4096) -> bytes:
    from backups.engines.bundle import bundle_source

    bundle = bundle_source(
        [(name, lambda data=data: _BytesSource(data)) for name, data in members.items()], segment_size=segment_size
    )
    out = io.BytesIO()
    backup_stream(bundle, out, data_key=KEY, key_id="alpha-1", payload="bp-bundle")
    bundle.finish()
    return out.getvalue()


def _unpack(tmp_path: Path, artifact: bytes, folder: str = "unpacked") -> int:
    (tmp_path / "a.bpaf").write_bytes(artifact)
    (tmp_path / "k.json").write_bytes(export_key_file(KEY, "alpha-1"))
    return cli.main(
        ["--key-file", str(tmp_path / "k.json"), "--unpack", str(tmp_path / folder), str(tmp_path / "a.bpaf")]
    )


def test_unpack_writes_bundle_members_whole_and_checked(tmp_path: Path, capsys) -> None:
    dump, config = os.urandom(10_000), b'{"a": 1}'
    assert _unpack(tmp_path, _bundle_artifact({"00-db.dump": dump, "sub/01-config.json": config})) == 0
    assert "unpacked 3 file(s)" in capsys.readouterr().err
    assert (tmp_path / "unpacked" / "00-db.dump").read_bytes() == dump  # three parts joined
    assert (tmp_path / "unpacked" / "sub" / "01-config.json").read_bytes() == config
    manifest = json.loads((tmp_path / "unpacked" / "manifest.json").read_text())
    assert [m["parts"] for m in manifest["members"]] == [3, 0]
    assert _unpack(tmp_path, _bundle_artifact({"x": b"1"})) == 2  # the folder exists: refused
    assert "exists" in capsys.readouterr().err


def test_unpack_reads_bundles_of_earlier_versions(tmp_path: Path) -> None:
    import hashlib
    import tarfile

    dump = os.urandom(10_000)
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("00-db.dump")
        info.size, info.pax_headers = len(dump), {"BP.sha256": hashlib.sha256(dump).hexdigest()}
        tar.addfile(info, io.BytesIO(dump))
        manifest = json.dumps(
            {
                "format": "bp-bundle/1",
                "members": [{"name": "00-db.dump", "size": len(dump), "sha256": hashlib.sha256(dump).hexdigest()}],
            }
        ).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    old = io.BytesIO()
    backup_stream(plain.getvalue(), old, data_key=KEY, key_id="alpha-1", payload="bp-bundle")
    assert _unpack(tmp_path, old.getvalue()) == 0
    assert (tmp_path / "unpacked" / "00-db.dump").read_bytes() == dump


def test_unpack_refuses_a_damaged_bundle_and_writes_nothing(tmp_path: Path, capsys) -> None:
    good = _bundle_artifact({"00-db.dump": os.urandom(10_000)})
    plain = b"".join(restore_stream(io.BytesIO(good), KEY))
    # Drop the second part (its headers and data) from the tar: a member with a gap.
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = tar.getmembers()
    start, end = members[1].offset, members[2].offset
    gapped = io.BytesIO()
    backup_stream(plain[:start] + plain[end:], gapped, data_key=KEY, key_id="alpha-1", payload="bp-bundle")
    assert _unpack(tmp_path, gapped.getvalue()) == 1
    assert "out of order" in capsys.readouterr().err
    assert not any(p.name.startswith((".unpacked", "unpacked")) for p in tmp_path.iterdir())
    sql = io.BytesIO()
    backup_stream(b"SELECT 1;\n", sql, data_key=KEY, key_id="alpha-1", payload="sql")
    assert _unpack(tmp_path, sql.getvalue()) == 2
    assert "--unpack is for application bundles" in capsys.readouterr().err
