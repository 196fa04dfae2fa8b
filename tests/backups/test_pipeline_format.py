"""The BPAF artifact format: integrity checks a restoring user relies on, and key handling.

Pure Python, no Django: run with ``-p no:django``.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backups.pipeline import (
    ArtifactCorrupt,
    ArtifactError,
    KeyFileError,
    KeyUnwrapError,
    UnsupportedArtifact,
    WrongKey,
    backup_stream,
    export_key_file,
    generate_data_key,
    load_key_file,
    parse_key_file,
    restore_stream,
    unwrap_key,
    verify_stream,
    wrap_key,
)
from backups.pipeline.format import FRAME_BYTES, HEADER_FIXED_BYTES

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
CHUNK = 64


def make_artifact(data: bytes, *, compression: str = "none", chunk_size: int = CHUNK, key: bytes = KEY) -> bytes:
    sink = io.BytesIO()
    backup_stream(
        io.BytesIO(data),
        sink,
        data_key=key,
        key_id="tenant-7/v1",
        compression=compression,
        chunk_size=chunk_size,
    )
    return sink.getvalue()


def split_artifact(artifact: bytes) -> tuple[bytes, list[bytes]]:
    """Split into (header, [framed chunk, ...]) using only the documented layout."""
    key_id_len = struct.unpack(">H", artifact[HEADER_FIXED_BYTES - 2 : HEADER_FIXED_BYTES])[0]
    header_len = HEADER_FIXED_BYTES + key_id_len
    chunks, pos = [], header_len
    while pos < len(artifact):
        length = struct.unpack(">I", artifact[pos + 1 : pos + FRAME_BYTES])[0]
        chunks.append(artifact[pos : pos + FRAME_BYTES + length])
        pos += FRAME_BYTES + length
    return artifact[:header_len], chunks


def restore(artifact: bytes, key: bytes = KEY) -> bytes:
    return b"".join(restore_stream(io.BytesIO(artifact), key))


DATA = bytes(range(256)) * 3  # 768 bytes -> 12 full chunks of 64 with compression "none"


def test_artifact_round_trips_and_has_documented_layout() -> None:
    artifact = make_artifact(DATA)
    header, chunks = split_artifact(artifact)
    assert header[:4] == b"BPAF"
    assert header[4] == 2  # format version
    assert header.endswith(b"tenant-7/v1")
    assert len(chunks) == 12
    assert [c[0] for c in chunks] == [0] * 11 + [1]  # only the last chunk is flagged final
    assert restore(artifact) == DATA


def test_two_backups_of_the_same_data_do_not_share_ciphertext() -> None:
    first, second = make_artifact(DATA), make_artifact(DATA)
    assert split_artifact(first)[1][0] != split_artifact(second)[1][0]


@settings(max_examples=60, deadline=None)
@given(position=st.integers(min_value=0, max_value=len(make_artifact(DATA)) - 1))
def test_flipping_any_single_byte_is_detected(position: int) -> None:
    artifact = bytearray(make_artifact(DATA))
    artifact[position] ^= 0x01
    with pytest.raises(ArtifactError):
        restore(bytes(artifact))


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_tampering_in_the_last_byte_of_every_chunk_is_detected(compression: str) -> None:
    artifact = make_artifact(os.urandom(500), compression=compression)
    header, chunks = split_artifact(artifact)
    for index in range(len(chunks)):
        damaged = [bytearray(c) for c in chunks]
        damaged[index][-1] ^= 0x80
        with pytest.raises(ArtifactCorrupt, match=f"chunk {index} failed authentication"):
            restore(header + b"".join(damaged))


def test_dropping_the_last_chunk_is_reported_as_truncation() -> None:
    header, chunks = split_artifact(make_artifact(DATA))
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        restore(header + b"".join(chunks[:-1]))


def test_dropping_the_final_chunk_of_an_empty_backup_is_detected() -> None:
    header, chunks = split_artifact(make_artifact(b""))
    assert len(chunks) == 1
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        restore(header)


def test_marking_an_earlier_chunk_final_to_hide_truncation_is_detected() -> None:
    header, chunks = split_artifact(make_artifact(DATA))
    forged = bytes([1]) + chunks[5][1:]
    with pytest.raises(ArtifactCorrupt, match="chunk 5 failed authentication"):
        restore(header + b"".join(chunks[:5]) + forged)


@pytest.mark.parametrize("cut", [1, 4, 5, 6, 20, 40])
def test_cutting_the_artifact_mid_chunk_is_detected(cut: int) -> None:
    artifact = make_artifact(DATA)
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        restore(artifact[:-cut])


def test_cutting_inside_the_header_is_detected() -> None:
    artifact = make_artifact(DATA)
    for cut in (2, 10, HEADER_FIXED_BYTES, HEADER_FIXED_BYTES + 3):
        with pytest.raises(ArtifactCorrupt):
            restore(artifact[:cut])


def test_swapping_two_chunks_is_detected() -> None:
    header, chunks = split_artifact(make_artifact(DATA))
    chunks[2], chunks[3] = chunks[3], chunks[2]
    with pytest.raises(ArtifactCorrupt, match="chunk 2 failed authentication"):
        restore(header + b"".join(chunks))


def test_splicing_a_chunk_from_another_backup_with_the_same_key_is_detected() -> None:
    header, chunks = split_artifact(make_artifact(DATA))
    _, foreign = split_artifact(make_artifact(DATA))
    chunks[4] = foreign[4]
    with pytest.raises(ArtifactCorrupt, match="chunk 4"):
        restore(header + b"".join(chunks))


def test_appending_data_after_the_final_chunk_is_detected() -> None:
    artifact = make_artifact(DATA)
    with pytest.raises(ArtifactCorrupt, match="after its final chunk"):
        restore(artifact + b"\0")


def test_duplicating_the_final_chunk_is_detected() -> None:
    header, chunks = split_artifact(make_artifact(DATA))
    with pytest.raises(ArtifactCorrupt):
        restore(header + b"".join(chunks) + chunks[-1])


def test_wrong_key_fails_at_once_with_a_clear_message() -> None:
    artifact = make_artifact(DATA)
    with pytest.raises(WrongKey, match=r"wrong key: this artifact was encrypted with key 'tenant-7/v1'"):
        restore_stream(io.BytesIO(artifact), OTHER_KEY)


@pytest.mark.parametrize(
    ("offset", "what"),
    [
        (6, "compression id"),
        (10, "chunk size"),
        (13, "salt"),
        (29, "nonce prefix"),
        (40, "key check"),
    ],
)
def test_header_tampering_is_detected(offset: int, what: str) -> None:
    artifact = bytearray(make_artifact(DATA))
    artifact[offset] ^= 0x01
    with pytest.raises(ArtifactError):
        restore(bytes(artifact))


def test_renaming_the_key_id_in_the_header_is_detected() -> None:
    artifact = make_artifact(DATA).replace(b"tenant-7/v1", b"tenant-8/v1", 1)
    with pytest.raises(ArtifactCorrupt, match="chunk 0 failed authentication"):
        restore(artifact)


def test_a_file_that_is_not_an_artifact_is_named_as_such() -> None:
    with pytest.raises(UnsupportedArtifact, match="not a BPAF"):
        restore(b"\x28\xb5\x2f\xfd" + b"\0" * 100)  # a bare zstd file
    with pytest.raises(ArtifactCorrupt, match="empty"):
        restore(b"")


def test_a_future_format_version_is_refused_clearly() -> None:
    artifact = bytearray(make_artifact(DATA))
    artifact[4] = 3
    with pytest.raises(UnsupportedArtifact, match="version 3 is not supported"):
        restore(bytes(artifact))


def test_a_chunk_claiming_a_huge_length_is_refused_before_reading_it() -> None:
    header, _ = split_artifact(make_artifact(DATA))
    bogus = bytes([0]) + struct.pack(">I", 2**31) + b"x" * 32
    with pytest.raises(ArtifactCorrupt, match="chunk 0 declares"):
        restore(header + bogus)


def test_verify_reports_the_same_checksum_and_sizes_as_the_backup() -> None:
    sink = io.BytesIO()
    result = backup_stream(io.BytesIO(DATA * 10), sink, data_key=KEY, key_id="k", compression="gzip", chunk_size=CHUNK)
    verified = verify_stream(io.BytesIO(sink.getvalue()), KEY, decompress=True)
    assert verified.sha256 == result.sha256
    assert verified.stored_bytes == result.stored_bytes == len(sink.getvalue())
    assert verified.compressed_bytes == result.compressed_bytes
    assert verified.raw_bytes == result.raw_bytes == len(DATA) * 10
    assert verified.chunks == result.chunks


# --------------------------------------------------------------------------- keys


def test_wrapped_data_key_unwraps_only_with_the_master_key() -> None:
    master, data_key = generate_data_key(), generate_data_key()
    wrapped = wrap_key(master, data_key)
    assert data_key not in wrapped
    assert unwrap_key(master, wrapped) == data_key
    with pytest.raises(KeyUnwrapError, match="wrong master key"):
        unwrap_key(generate_data_key(), wrapped)


def test_wrapped_key_bound_to_one_context_does_not_unwrap_in_another() -> None:
    master, data_key = generate_data_key(), generate_data_key()
    wrapped = wrap_key(master, data_key, context=b"tenant:1")
    assert unwrap_key(master, wrapped, context=b"tenant:1") == data_key
    with pytest.raises(KeyUnwrapError):
        unwrap_key(master, wrapped, context=b"tenant:2")


def test_damaged_wrapped_key_is_refused() -> None:
    master = generate_data_key()
    wrapped = bytearray(wrap_key(master, generate_data_key()))
    wrapped[20] ^= 1
    with pytest.raises(KeyUnwrapError):
        unwrap_key(master, bytes(wrapped))
    with pytest.raises(KeyUnwrapError, match="malformed"):
        unwrap_key(master, b"short")


def test_exported_key_file_loads_back_and_is_readable_json(tmp_path: Path) -> None:
    data_key = generate_data_key()
    path = tmp_path / "key.json"
    path.write_bytes(export_key_file(data_key, "tenant-7/v1"))
    document = json.loads(path.read_text())
    assert document["type"] == "bpaf-data-key"
    assert document["key_id"] == "tenant-7/v1"
    assert load_key_file(path) == ("tenant-7/v1", data_key)


def test_a_mistyped_key_file_is_refused_with_a_reason(tmp_path: Path) -> None:
    document = json.loads(export_key_file(generate_data_key(), "k"))
    key = document["key"]
    document["key"] = ("B" if key[0] != "B" else "C") + key[1:]
    with pytest.raises(KeyFileError, match="fingerprint"):
        parse_key_file(json.dumps(document))
    with pytest.raises(KeyFileError, match="not valid JSON"):
        parse_key_file(b"{nope")
    with pytest.raises(KeyFileError, match="cannot read"):
        load_key_file(tmp_path / "missing.json")


# --------------------------------------------------------------------------- the document


def test_the_reference_decryptor_in_the_format_document_restores_an_artifact(
    tmp_path: Path,
) -> None:
    """docs/artifact-format.md must be enough to restore without this package."""
    document = (REPO / "docs" / "artifact-format.md").read_text()
    match = re.search(r"```python\n(# bpaf_decrypt\.py.*?)```", document, re.S)
    assert match, "reference decryptor code block not found"
    script = tmp_path / "bpaf_decrypt.py"
    script.write_text(match.group(1))
    data = os.urandom(3000) + b"row\n" * 5000
    artifact = tmp_path / "backup.bpaf"
    artifact.write_bytes(make_artifact(data, compression="gzip", chunk_size=1000))
    key_file = tmp_path / "key.json"
    key_file.write_bytes(export_key_file(KEY, "tenant-7/v1"))

    done = subprocess.run([sys.executable, str(script), str(key_file), str(artifact)], capture_output=True, check=True)
    gunzipped = subprocess.run(["/usr/bin/gunzip", "-c"], input=done.stdout, capture_output=True)
    assert gunzipped.stdout == data

    tampered = bytearray(artifact.read_bytes())
    tampered[-3] ^= 1
    artifact.write_bytes(bytes(tampered))
    failed = subprocess.run([sys.executable, str(script), str(key_file), str(artifact)], capture_output=True)
    assert failed.returncode != 0
