"""S3 multipart uploads: growing parts reach S3's 5 TiB object limit in 10,000 parts, parts
upload concurrently, and the memory held by part buffers stays within a fixed budget."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from backups.storage import StorageError, open_backend
from backups.storage.s3 import MAX_OBJECT_SIZE, MAX_PARTS, PART_SIZE, part_size_for
from tests.fixtures.services import S3Bucket

KiB, MiB = 1024, 1024 * 1024


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> int:
    """Lower moto's minimum part size (its S3_UPLOAD_PART_MIN_SIZE setting; the server runs in
    this process) so that a test can use 64 KiB parts."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 64 * KiB)
    return 64 * KiB


def test_ten_thousand_growing_parts_hold_s3s_largest_object() -> None:
    sizes = [part_size_for(n) for n in range(1, MAX_PARTS + 1)]
    assert sizes[0] == PART_SIZE and max(sizes) <= 5 * 1024**3
    assert sum(sizes) >= MAX_OBJECT_SIZE
    assert MAX_PARTS * PART_SIZE < MAX_OBJECT_SIZE  # what fixed 8 MiB parts could hold: 78 GiB


def test_a_stream_needing_more_parts_than_the_limit_at_the_first_size_uploads_whole(
    small_parts: int, s3_bucket: S3Bucket
) -> None:
    max_parts = 20
    data = os.urandom(3 * MiB)  # 48 parts of 64 KiB: more than 20
    assert len(data) > max_parts * small_parts
    backend = open_backend(
        "minio",
        s3_bucket.configuration,
        s3_bucket.credentials,
        part_size=small_parts,
        max_parts=max_parts,
        concurrency=3,
    )
    with backend.open_writer("tenant/big.bpaf") as writer:
        for i in range(0, len(data), 100 * KiB):  # odd-sized writes across part boundaries
            writer.write(data[i : i + 100 * KiB])
        writer.commit()
    head = s3_bucket.client().head_object(Bucket=s3_bucket.name, Key="tenant/big.bpaf")
    parts = int(head["ETag"].strip('"').rsplit("-", 1)[1])
    assert 1 < parts <= max_parts
    stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key="tenant/big.bpaf")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_stream_beyond_what_the_parts_can_hold_fails_and_leaves_nothing(
    small_parts: int, s3_bucket: S3Bucket
) -> None:
    backend = open_backend(
        "minio", s3_bucket.configuration, s3_bucket.credentials, part_size=small_parts, max_parts=3
    )  # 64 + 128 + 256 KiB
    with pytest.raises(StorageError, match="larger than the 3 parts"), backend.open_writer("t/x") as writer:
        for _ in range(8):
            writer.write(os.urandom(64 * KiB))
    client = s3_bucket.client()
    assert client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
    assert client.list_objects_v2(Bucket=s3_bucket.name).get("KeyCount") == 0


def test_part_buffers_stay_within_the_memory_budget_and_spill_to_disk(
    small_parts: int, s3_bucket: S3Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 256 * KiB  # four parts in flight plus one filling: 51 KiB each in memory
    spilled: list[str] = []
    import tempfile

    real = tempfile.SpooledTemporaryFile

    class Watching(real):  # type: ignore[misc, valid-type]
        def rollover(self) -> None:
            spilled.append("part")
            super().rollover()

    monkeypatch.setattr(tempfile, "SpooledTemporaryFile", Watching)
    backend = open_backend(
        "minio",
        s3_bucket.configuration,
        s3_bucket.credentials,
        part_size=small_parts,
        max_parts=20,
        concurrency=4,
        memory_budget=budget,
        spool_dir=str(tmp_path),
    )
    data = os.urandom(4 * MiB)  # parts grow to 512 KiB, far above the budget per part
    with backend.open_writer("tenant/spill.bpaf") as writer:
        for i in range(0, len(data), 64 * KiB):
            writer.write(data[i : i + 64 * KiB])
        writer.commit()
    assert writer.peak_memory <= budget
    assert spilled, "parts larger than their share of the budget went to temp files"
    assert list(tmp_path.iterdir()) == []  # and the temp files are gone
    stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key="tenant/spill.bpaf")["Body"].read()
    assert stored == data


def test_parts_upload_concurrently(small_parts: int, s3_bucket: S3Bucket, monkeypatch: Any) -> None:
    import threading

    backend = open_backend(
        "minio", s3_bucket.configuration, s3_bucket.credentials, part_size=small_parts, concurrency=3
    )
    in_flight, peak, lock = 0, 0, threading.Lock()
    gate = threading.Barrier(3, timeout=30)  # passes only if three parts are in flight at once
    real = backend.client.upload_part

    def upload_part(**kwargs: Any) -> Any:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            if kwargs["PartNumber"] <= 3:
                gate.wait()
            return real(**kwargs)
        finally:
            with lock:
                in_flight -= 1

    monkeypatch.setattr(backend.client, "upload_part", upload_part)
    data = os.urandom(8 * small_parts)
    with backend.open_writer("tenant/c.bpaf") as writer:
        writer.write(data)
        writer.commit()
    assert peak == 3
    assert s3_bucket.client().get_object(Bucket=s3_bucket.name, Key="tenant/c.bpaf")["Body"].read() == data
