"""The streaming pipeline end to end: round trips, cancel, progress, and the offline CLI.

Pure Python, no Django: run with ``-p no:django``.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backups.pipeline import (
    ArtifactCorrupt,
    PipelineCancelled,
    backup_stream,
    decrypt_stream,
    export_key_file,
    generate_data_key,
    open_artifact,
    restore_stream,
)
from backups.pipeline.compress import OUTPUT_PIECE

REPO = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
COMPRESSIONS = ["none", "gzip", "zstd"]


def semi_compressible(size: int, seed: int = 1) -> bytes:
    """Text-like rows with random numbers: compresses ~3-5x, like a SQL dump."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += b"INSERT INTO t VALUES (%d, 'user-%d', %d.%02d);\n" % (
            rng.randrange(10**9),
            rng.randrange(10**6),
            rng.randrange(10**4),
            rng.randrange(100),
        )
    return bytes(out[:size])


def backup(data: bytes, compression: str, chunk_size: int = 1 << 20, **kwargs: object) -> bytes:
    sink = io.BytesIO()
    backup_stream(
        io.BytesIO(data),
        sink,
        data_key=KEY,
        key_id="tenant-1/v1",
        compression=compression,
        chunk_size=chunk_size,
        **kwargs,  # type: ignore[arg-type]
    )
    return sink.getvalue()


def restore(artifact: bytes) -> bytes:
    return b"".join(restore_stream(io.BytesIO(artifact), KEY))


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_backup_restores_to_the_same_bytes(compression: str) -> None:
    data = semi_compressible(3_000_000)
    artifact = backup(data, compression, chunk_size=256 * 1024)
    assert restore(artifact) == data
    if compression != "none":
        assert len(artifact) < len(data) / 2


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_empty_source_gives_a_restorable_artifact(compression: str) -> None:
    artifact = backup(b"", compression)
    assert restore(artifact) == b""


@pytest.mark.parametrize("compression", COMPRESSIONS)
@pytest.mark.parametrize("delta", [-1, 0, 1])
@pytest.mark.parametrize("chunks", [1, 2, 3])
def test_sizes_around_chunk_boundaries_round_trip(compression: str, delta: int, chunks: int) -> None:
    chunk_size = 4096
    data = os.urandom(chunk_size * chunks + delta)  # incompressible: compressed size ~ raw size
    assert restore(backup(data, compression, chunk_size=chunk_size)) == data


def test_uncompressed_chunk_count_follows_the_chunk_size() -> None:
    sink = io.BytesIO()
    result = backup_stream(io.BytesIO(b"x" * 1000), sink, data_key=KEY, key_id="k", compression="none", chunk_size=100)
    assert result.chunks == 10  # the tenth chunk is the final one, not an extra empty chunk
    assert result.raw_bytes == result.compressed_bytes == 1000
    assert result.stored_bytes == len(sink.getvalue())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=5000),
    chunk_size=st.integers(min_value=1, max_value=700),
    read_size=st.integers(min_value=1, max_value=900),
    compression=st.sampled_from(COMPRESSIONS),
)
def test_random_contents_and_sizes_round_trip(data: bytes, chunk_size: int, read_size: int, compression: str) -> None:
    artifact = backup(data, compression, chunk_size=chunk_size, read_size=read_size)
    assert restore(artifact) == data


@settings(max_examples=30, deadline=None)
@given(pieces=st.lists(st.binary(max_size=3000), max_size=12))
def test_iterable_sources_of_any_piece_sizes_round_trip(pieces: list[bytes]) -> None:
    sink = io.BytesIO()
    result = backup_stream(
        iter(pieces),
        sink,
        data_key=KEY,
        key_id="k",
        compression="zstd",
        chunk_size=512,
        read_size=1000,
    )
    assert result.raw_bytes == sum(map(len, pieces))
    assert restore(sink.getvalue()) == b"".join(pieces)


def test_a_plain_bytes_payload_can_be_backed_up_directly() -> None:
    sink = io.BytesIO()
    payload = json.dumps({"schedules": [1, 2, 3]}).encode()
    result = backup_stream(payload, sink, data_key=KEY, key_id="k", compression="gzip")
    assert result.raw_bytes == len(payload)
    assert restore(sink.getvalue()) == payload


def test_result_checksum_is_sha256_of_the_stored_bytes() -> None:
    import hashlib

    sink = io.BytesIO()
    result = backup_stream(io.BytesIO(b"abc" * 1000), sink, data_key=KEY, key_id="k")
    assert result.sha256 == hashlib.sha256(sink.getvalue()).hexdigest()
    assert result.compression == "zstd"


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_restore_of_highly_compressible_data_yields_bounded_pieces(compression: str) -> None:
    # 40 MiB of zeros compress to a few KiB: one chunk must not expand into one huge piece.
    size = 40 << 20
    artifact = backup(bytes(size), compression)
    total = 0
    for piece in restore_stream(io.BytesIO(artifact), KEY):
        assert len(piece) <= OUTPUT_PIECE
        total += len(piece)
    assert total == size


def test_decrypt_stream_gives_the_compressed_stream_zstd_can_read() -> None:
    data = semi_compressible(500_000)
    artifact = backup(data, "zstd", chunk_size=10_000)
    compressed = b"".join(decrypt_stream(io.BytesIO(artifact), KEY))
    done = subprocess.run(["/usr/bin/zstd", "-d", "-c"], input=compressed, capture_output=True, check=True)
    assert done.stdout == data


def test_tampering_is_raised_while_restoring_a_zstd_stream() -> None:
    artifact = bytearray(backup(semi_compressible(300_000), "zstd", chunk_size=5_000))
    artifact[len(artifact) // 2] ^= 0x04
    with pytest.raises(ArtifactCorrupt, match="failed authentication"):
        restore(bytes(artifact))


def test_a_reader_reports_header_facts_before_reading_data() -> None:
    reader = open_artifact(io.BytesIO(backup(b"data", "gzip", chunk_size=4096)), KEY)
    assert reader.header.key_id == "tenant-1/v1"
    assert reader.header.chunk_size == 4096
    assert reader.compression.label == "gzip"


# --------------------------------------------------------------------------- cancel, progress, errors


class EndlessSource:
    """A pg_dump that never ends, unless cancelled."""

    def __init__(self) -> None:
        self.reads = 0
        self.block = semi_compressible(64 * 1024)

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        return self.block


def test_cancel_mid_stream_raises_and_leaves_no_final_chunk() -> None:
    source, sink = EndlessSource(), io.BytesIO()
    calls = 0

    def cancel() -> bool:
        nonlocal calls
        calls += 1
        return calls > 20

    with pytest.raises(PipelineCancelled, match="cancelled after"):
        backup_stream(
            source,
            sink,
            data_key=KEY,
            key_id="k",
            chunk_size=4096,
            cancel=cancel,
            cancel_interval=0,
        )
    assert source.reads > 0
    assert len(sink.getvalue()) > 0
    # The partial artifact can never pass for a complete one.
    with pytest.raises(ArtifactCorrupt, match="truncated"):
        restore(sink.getvalue())


class StalledSource:
    """pg_dump waiting on a lock: read() blocks until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def read(self, size: int = -1) -> bytes:
        self.release.wait(timeout=30)
        return b""


def test_cancel_works_while_the_source_produces_nothing() -> None:
    source = StalledSource()
    try:
        with pytest.raises(PipelineCancelled):
            backup_stream(
                source,
                io.BytesIO(),
                data_key=KEY,
                key_id="k",
                cancel=lambda: True,
                cancel_interval=0,
            )
    finally:
        source.release.set()


def test_progress_reports_growing_byte_counts_ending_with_the_total() -> None:
    seen: list[int] = []
    data = semi_compressible(2_000_000)
    sink = io.BytesIO()
    backup_stream(
        io.BytesIO(data),
        sink,
        data_key=KEY,
        key_id="k",
        read_size=100_000,
        progress=seen.append,
        progress_interval=0,
    )
    assert len(seen) >= 2
    assert seen == sorted(seen)
    assert seen[-1] == len(data)


def test_progress_is_rate_limited() -> None:
    seen: list[int] = []
    backup_stream(
        io.BytesIO(bytes(5_000_000)),
        io.BytesIO(),
        data_key=KEY,
        key_id="k",
        read_size=1000,
        progress=seen.append,
        progress_interval=3600,
    )
    assert seen == [5_000_000]  # only the final report within the hour


class FailingSource:
    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 3:
            raise OSError("pipe broke")
        return b"x" * 1000


def test_a_source_error_reaches_the_caller() -> None:
    with pytest.raises(OSError, match="pipe broke"):
        backup_stream(FailingSource(), io.BytesIO(), data_key=KEY, key_id="k")


class FullDisk:
    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> int:
        self.writes += 1
        if self.writes > 2:
            raise OSError(28, "No space left on device")
        return len(data)


def test_a_sink_error_reaches_the_caller_and_stops_reading() -> None:
    source = EndlessSource()
    with pytest.raises(OSError, match="No space left"):
        backup_stream(source, FullDisk(), data_key=KEY, key_id="k", chunk_size=1000)


def test_a_wrong_sized_key_is_refused_before_writing() -> None:
    sink = io.BytesIO()
    with pytest.raises(ValueError, match="32 bytes"):
        backup_stream(io.BytesIO(b"x"), sink, data_key=b"short", key_id="k")
    assert sink.getvalue() == b""


def test_a_real_subprocess_pipe_can_be_backed_up() -> None:
    data = semi_compressible(3_000_000)
    proc = subprocess.Popen(["/usr/bin/cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    feeder = threading.Thread(target=lambda: (proc.stdin.write(data), proc.stdin.close()))  # type: ignore[union-attr]
    feeder.start()
    sink = io.BytesIO()
    result = backup_stream(proc.stdout, sink, data_key=KEY, key_id="k")  # type: ignore[arg-type]
    feeder.join()
    proc.wait()
    assert result.raw_bytes == len(data)
    assert restore(sink.getvalue()) == data


# --------------------------------------------------------------------------- offline CLI


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "backups.pipeline.decrypt_cli", *args],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "tenant-key.json"
    path.write_bytes(export_key_file(KEY, "tenant-1/v1"))
    return path


@pytest.mark.parametrize(
    ("compression", "tool"),
    [("zstd", ["/usr/bin/zstd", "-d", "-c"]), ("gzip", ["/usr/bin/gunzip", "-c"])],
)
def test_offline_cli_output_decompresses_with_the_standard_tool(
    tmp_path: Path, key_file: Path, compression: str, tool: list[str]
) -> None:
    data = semi_compressible(2_500_000) + os.urandom(100_000)
    artifact = tmp_path / "backup.bpaf"
    artifact.write_bytes(backup(data, compression, chunk_size=64 * 1024))
    output = tmp_path / "backup.out"

    done = run_cli("--key-file", str(key_file), str(artifact), str(output))

    assert done.returncode == 0, done.stderr
    assert b"ok:" in done.stderr
    decompressed = subprocess.run([*tool, str(output)], capture_output=True, check=True)
    assert decompressed.stdout == data


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_offline_cli_decompress_to_stdout_reproduces_the_original(
    tmp_path: Path, key_file: Path, compression: str
) -> None:
    data = semi_compressible(1_000_000)
    artifact = tmp_path / "backup.bpaf"
    artifact.write_bytes(backup(data, compression, chunk_size=50_000))

    done = run_cli("--key-file", str(key_file), "--decompress", str(artifact), "-")

    assert done.returncode == 0, done.stderr
    assert done.stdout == data


def test_offline_cli_reads_the_artifact_from_stdin(key_file: Path) -> None:
    data = semi_compressible(300_000)
    done = run_cli("--key-file", str(key_file), "--decompress", "-", "-", stdin=backup(data, "gzip"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == data


def test_offline_cli_refuses_a_tampered_artifact_and_leaves_no_output(tmp_path: Path, key_file: Path) -> None:
    artifact = bytearray(backup(semi_compressible(500_000), "zstd", chunk_size=10_000))
    artifact[-100] ^= 0x10
    path = tmp_path / "backup.bpaf"
    path.write_bytes(bytes(artifact))
    output = tmp_path / "out.zst"

    done = run_cli("--key-file", str(key_file), str(path), str(output))

    assert done.returncode == 1
    message = done.stderr.decode().strip()
    assert "\n" not in message
    assert message.startswith("decrypt failed: chunk") and "failed authentication" in message
    assert not output.exists()
    assert set(tmp_path.iterdir()) == {path, key_file}  # no leftover partial file


def test_offline_cli_refuses_a_truncated_artifact(tmp_path: Path, key_file: Path) -> None:
    artifact = backup(semi_compressible(500_000), "zstd", chunk_size=10_000)
    path = tmp_path / "backup.bpaf"
    path.write_bytes(artifact[: len(artifact) // 2])
    done = run_cli("--key-file", str(key_file), "--decompress", str(path), "-")
    assert done.returncode == 1
    assert b"truncated" in done.stderr


def test_offline_cli_says_wrong_key_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "backup.bpaf"
    path.write_bytes(backup(b"secret rows", "zstd"))
    other = tmp_path / "other-key.json"
    other.write_bytes(export_key_file(generate_data_key(), "tenant-2/v1"))

    done = run_cli("--key-file", str(other), str(path), str(tmp_path / "out"))

    assert done.returncode == 1
    assert done.stderr.decode().count("\n") == 1
    assert "wrong key" in done.stderr.decode()
    assert "tenant-1/v1" in done.stderr.decode()


def test_offline_cli_rejects_a_broken_key_file(tmp_path: Path) -> None:
    path = tmp_path / "backup.bpaf"
    path.write_bytes(backup(b"rows", "zstd"))
    bad = tmp_path / "key.json"
    bad.write_text(json.dumps({"type": "bpaf-data-key", "version": 1, "key_id": "x", "key": "AAAA"}))
    done = run_cli("--key-file", str(bad), str(path), "-")
    assert done.returncode == 2
    assert b"32 bytes" in done.stderr


def test_offline_cli_does_not_overwrite_an_existing_file(tmp_path: Path, key_file: Path) -> None:
    path = tmp_path / "backup.bpaf"
    path.write_bytes(backup(b"rows", "zstd"))
    output = tmp_path / "existing"
    output.write_bytes(b"keep me")
    done = run_cli("--key-file", str(key_file), str(path), str(output))
    assert done.returncode == 2
    assert output.read_bytes() == b"keep me"


def test_offline_cli_never_imports_django() -> None:
    code = (
        "import sys, backups.pipeline.decrypt_cli, backups.pipeline;"
        "assert not any(m == 'django' or m.startswith('django.') for m in sys.modules), 'django imported'"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_pipe_written_in_small_pieces_is_read_in_whole_blocks_and_round_trips() -> None:
    """A dump tool writes a few KiB at a time; the pipeline fills whole blocks from the pipe
    (the last one shorter) and the artifact restores to exactly what was written."""
    data = semi_compressible(3 * (1 << 20) + 12345)
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as out:
            for start in range(0, len(data), 7000):
                out.write(data[start : start + 7000])

    thread = threading.Thread(target=writer)
    thread.start()
    artifact = io.BytesIO()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        result = backup_stream(pipe, artifact, data_key=KEY, key_id="k", read_size=1 << 20)
    thread.join()
    assert result.raw_bytes == len(data)
    artifact.seek(0)
    assert b"".join(restore_stream(artifact, KEY)) == data
