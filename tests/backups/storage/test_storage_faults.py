"""Transient storage failures injected for real: a TCP proxy on loopback in front of the moto
server and the SFTP server answers 503, cuts connections mid-request, or refuses them."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from backups.storage import StorageError, StorageUnavailable, open_backend
from tests.fixtures.services import FaultProxy, S3Bucket, SSHServerInfo

MiB = 1024 * 1024


@pytest.fixture
def fast_retries(settings: Any) -> None:
    """The storage retry policy, with waits short enough for a test."""
    settings.STORAGE_RETRY_ATTEMPTS = 8
    settings.STORAGE_RETRY_INITIAL = 0.01
    settings.STORAGE_RETRY_MAX = 0.1
    settings.STORAGE_RETRY_DEADLINE = 30


def _stream(size: int, seed: int = 1) -> list[bytes]:
    data = os.urandom(size)
    return [data[i : i + MiB] for i in range(0, size, MiB)]


def _upload(bucket: S3Bucket, key: str, chunks: list[bytes]) -> None:
    backend = open_backend("minio", bucket.configuration, bucket.credentials)
    with backend.open_writer(key) as writer:
        for chunk in chunks:
            writer.write(chunk)
        writer.commit()


def _open_uploads(bucket: S3Bucket) -> list[dict[str, Any]]:
    return bucket.client().list_multipart_uploads(Bucket=bucket.name).get("Uploads", [])


def test_s3_upload_rides_out_a_run_of_503_answers(
    fast_retries: None, s3_bucket: S3Bucket, s3_proxy: FaultProxy, s3_proxied_bucket: S3Bucket
) -> None:
    chunks = _stream(20 * MiB)
    s3_proxy.fail("http_503", times=5)  # more than one request's worth of bad luck
    _upload(s3_proxied_bucket, "tenant/a.bpaf", chunks)
    assert s3_proxy.faults == 5
    stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key="tenant/a.bpaf")["Body"].read()
    assert hashlib.sha256(stored).digest() == hashlib.sha256(b"".join(chunks)).digest()
    assert _open_uploads(s3_bucket) == []


def test_s3_upload_rides_out_connections_cut_mid_part(
    fast_retries: None, s3_bucket: S3Bucket, s3_proxy: FaultProxy, s3_proxied_bucket: S3Bucket
) -> None:
    chunks = _stream(20 * MiB)
    s3_proxy.fail("drop", times=4, after_bytes=512 * 1024)  # parts are 8 MiB: cut inside them
    _upload(s3_proxied_bucket, "tenant/b.bpaf", chunks)
    assert s3_proxy.faults == 4
    stored = s3_bucket.client().get_object(Bucket=s3_bucket.name, Key="tenant/b.bpaf")["Body"].read()
    assert stored == b"".join(chunks)
    assert _open_uploads(s3_bucket) == []


def test_s3_upload_that_outlasts_the_retries_fails_with_storage_unavailable(
    settings: Any, s3_bucket: S3Bucket, s3_proxy: FaultProxy, s3_proxied_bucket: S3Bucket, tmp_path: Any
) -> None:
    settings.STORAGE_RETRY_ATTEMPTS, settings.STORAGE_RETRY_INITIAL = 3, 0.01
    # A small memory budget: the 8 MiB part spills to a temp file, which must go too.
    backend = open_backend(
        "minio",
        s3_proxied_bucket.configuration,
        s3_proxied_bucket.credentials,
        memory_budget=MiB,
        spool_dir=str(tmp_path),
    )
    s3_proxy.set_mode("http_503")
    with pytest.raises(StorageUnavailable) as info, backend.open_writer("tenant/c.bpaf") as writer:
        for chunk in _stream(10 * MiB):
            writer.write(chunk)
        writer.commit()
    assert "unavailable" in info.value.message
    assert s3_proxy.faults == 3  # create_multipart_upload, tried three times
    s3_proxy.up()
    assert s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name).get("KeyCount") == 0
    assert list(tmp_path.iterdir()) == []


def _sftp_through(proxy: FaultProxy, server: SSHServerInfo) -> Any:
    configuration = {
        "host": "127.0.0.1",
        "port": proxy.port,
        "path": f"/store-{proxy.port}",
        "username": server.username,
        "host_key": server.host_key,
    }
    return open_backend("sftp", configuration, {"password": server.password})


def test_sftp_upload_resumes_after_the_ssh_connection_drops_mid_transfer(
    fast_retries: None, sftp_server: SSHServerInfo, fault_proxy: Any
) -> None:
    proxy = fault_proxy(sftp_server.host, sftp_server.port)
    chunks = _stream(24 * MiB)
    with _sftp_through(proxy, sftp_server) as backend:
        with backend.open_writer("tenant/d.bpaf") as writer:
            for n, chunk in enumerate(chunks):
                if n == 3:  # the SSH connection is cut twice, each time 5 MiB later
                    proxy.fail("drop", times=2, after_bytes=5 * MiB)
                writer.write(chunk)
            writer.commit()
        assert proxy.faults == 2
    folder = sftp_server.root / f"store-{proxy.port}" / "tenant"
    assert (folder / "d.bpaf").read_bytes() == b"".join(chunks)
    leftovers = [p.name for p in folder.iterdir()]
    assert leftovers == ["d.bpaf"]  # no .part file


def test_sftp_upload_fails_cleanly_when_the_server_stays_away(
    settings: Any, sftp_server: SSHServerInfo, fault_proxy: Any
) -> None:
    settings.STORAGE_RETRY_ATTEMPTS, settings.STORAGE_RETRY_INITIAL = 3, 0.01
    proxy = fault_proxy(sftp_server.host, sftp_server.port)
    backend = _sftp_through(proxy, sftp_server)
    writer = backend.open_writer("tenant/e.bpaf")
    writer.write(os.urandom(MiB))
    proxy.set_mode("refuse")
    with pytest.raises(StorageError) as info:
        for chunk in _stream(16 * MiB):
            writer.write(chunk)
    assert isinstance(info.value, StorageUnavailable)
    proxy.up()
    # The writer aborted; the partial file it could not remove while the server was away is
    # what the reaper's discard_partials removes.
    assert backend.discard_partials("tenant/e.bpaf") <= 1
    assert list((sftp_server.root / f"store-{proxy.port}" / "tenant").iterdir()) == []
    backend.close()
