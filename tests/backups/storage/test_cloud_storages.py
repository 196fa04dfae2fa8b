"""GCS and Azure storages against their emulators: streaming writes in several chunks or
blocks, nothing visible before commit, nothing left after an abort, and a PostgreSQL backup
round trip through each (backup with the platform's service, restore, compare)."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta
from typing import Any

import pytest

from backups.models import Restore, Storage
from backups.storage import open_backend
from backups.tasks import run_restore
from tests.e2e.conftest import needs_pg, pg_dump_text
from tests.e2e.test_postgres_roundtrip import backup_through_api
from tests.fixtures.services import AzureContainer, GCSBucket

KiB, MiB = 1024, 1024 * 1024


def test_azure_streams_growing_blocks_and_commits_them_at_once(azure_container: AzureContainer) -> None:
    backend = open_backend(
        "azure",
        azure_container.configuration,
        azure_container.credentials,
        part_size=256 * KiB,
        max_parts=20,
        concurrency=3,
    )
    data = os.urandom(5 * MiB)  # 20 blocks of 256 KiB would not hold it: blocks grow
    client = azure_container.client()
    with backend.open_writer("tenant/big.bpaf") as writer:
        for i in range(0, len(data), 300 * KiB):
            writer.write(data[i : i + 300 * KiB])
            if i > 2 * MiB:
                assert [b.name for b in client.list_blobs()] == []  # staged, not visible
        writer.commit()
    blocks = client.get_blob_client("tenant/big.bpaf").get_block_list("committed")[0]
    assert 1 < len(blocks) <= 20
    assert client.download_blob("tenant/big.bpaf").readall() == data


def test_azure_abort_leaves_no_uncommitted_blocks(azure_container: AzureContainer) -> None:
    backend = open_backend("azure", azure_container.configuration, azure_container.credentials, part_size=256 * KiB)
    writer = backend.open_writer("tenant/cut.bpaf")
    writer.write(os.urandom(MiB))  # four blocks staged
    client = azure_container.client()
    deadline = time.monotonic() + 30  # blocks are staged by the writer's threads
    while not list(client.list_blobs(include=["uncommittedblobs"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [b.name for b in client.list_blobs(include=["uncommittedblobs"])] == ["tenant/cut.bpaf"]
    writer.abort()
    assert list(client.list_blobs(include=["uncommittedblobs"])) == []


def test_azure_sweep_removes_abandoned_uncommitted_blocks_only(azure_container: AzureContainer) -> None:
    client = azure_container.client()
    import base64

    block = base64.b64encode(b"block-000001").decode()
    client.get_blob_client("alpha/abandoned.bpaf").stage_block(block, b"x" * 1000)
    client.get_blob_client("alpha/kept.bpaf").upload_blob(b"done")
    client.get_blob_client("elsewhere/other.bin").stage_block(block, b"y" * 10)
    backend = open_backend("azure", azure_container.configuration, azure_container.credentials)
    assert backend.sweep_abandoned(prefixes=["alpha/"], older_than=timedelta(hours=6)) == 0  # too young
    assert backend.sweep_abandoned(prefixes=["alpha/"], older_than=timedelta(0)) == 1
    names = sorted(b.name for b in client.list_blobs(include=["uncommittedblobs"]))
    assert names == ["alpha/kept.bpaf", "elsewhere/other.bin"]


def test_gcs_resumable_upload_in_chunks_is_invisible_until_commit(gcs_bucket: GCSBucket) -> None:
    backend = open_backend("gcs", gcs_bucket.configuration, gcs_bucket.credentials, chunk_size=256 * KiB)
    data = os.urandom(3 * MiB + 123)
    bucket = gcs_bucket.client()
    with backend.open_writer("tenant/big.bpaf") as writer:
        for i in range(0, len(data), 100 * KiB):
            writer.write(data[i : i + 100 * KiB])
            if i > MiB:
                assert not bucket.blob("tenant/big.bpaf").exists()  # chunks sent, not finalised
        writer.commit()
    assert bucket.blob("tenant/big.bpaf").download_as_bytes() == data
    with backend.open_reader("tenant/big.bpaf") as reader:
        assert hashlib.sha256(reader.read()).digest() == hashlib.sha256(data).digest()


# -- PostgreSQL round trips ----------------------------------------------------------------------


def _round_trip(api: Any, operator: Any, server: Any, database: str, storage: Storage, cleanup: list[str]) -> None:
    backup = backup_through_api(api, operator, server, database, storage=storage)
    assert backup.status == "completed", backup.error_message
    backend = open_backend(storage.type, storage.configuration, storage.credentials)
    with backend, backend.open_reader(backup.storage_path) as reader:
        assert hashlib.sha256(reader.read()).hexdigest() == backup.checksum
    target = f"{database}_{storage.type}"
    cleanup.append(target)
    response = api(operator).post(f"/api/v1/backups/{backup.pk}/restore", {"target_database": target}, format="json")
    assert response.status_code in (200, 201, 202), response.content
    restore_id = response.json()["restore_id"]
    run_restore(Restore.objects.get(pk=restore_id).operation_id)
    restore = Restore.objects.get(pk=restore_id)
    assert restore.status == "completed", restore.error_message
    assert pg_dump_text(target) == pg_dump_text(database)


@needs_pg
@pytest.mark.django_db(transaction=True)
def test_postgres_roundtrip_through_azure(
    api: Any,
    operator_a: Any,
    tenant_a: Any,
    pg_server_row: Any,
    pg_source_db: str,
    azure_container: AzureContainer,
    cleanup_pg: list[str],
) -> None:
    storage = Storage.objects.create(
        tenant=tenant_a,
        name="azure",
        type="azure",
        configuration={**azure_container.configuration, "path_prefix": "backups"},
        credentials=azure_container.credentials,
    )
    _round_trip(api, operator_a, pg_server_row, pg_source_db, storage, cleanup_pg)


@needs_pg
@pytest.mark.django_db(transaction=True)
def test_postgres_roundtrip_through_gcs(
    api: Any,
    operator_a: Any,
    tenant_a: Any,
    pg_server_row: Any,
    pg_source_db: str,
    gcs_bucket: GCSBucket,
    cleanup_pg: list[str],
) -> None:
    storage = Storage.objects.create(
        tenant=tenant_a,
        name="gcs",
        type="gcs",
        configuration={**gcs_bucket.configuration, "path_prefix": "backups"},
        credentials=gcs_bucket.credentials,
    )
    _round_trip(api, operator_a, pg_server_row, pg_source_db, storage, cleanup_pg)


# -- transient failures through the fault proxy -----------------------------------------------


@pytest.fixture
def fast_retries(settings: Any) -> None:
    settings.STORAGE_RETRY_ATTEMPTS = 8
    settings.STORAGE_RETRY_INITIAL = 0.01
    settings.STORAGE_RETRY_MAX = 0.1
    settings.STORAGE_RETRY_DEADLINE = 30


def _through(proxy: Any, url: str) -> str:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    return url.replace(host_port, f"127.0.0.1:{proxy.port}")


def test_azure_upload_rides_out_503s_and_cut_connections(
    fast_retries: None, azure_container: AzureContainer, fault_proxy: Any
) -> None:
    host, port = azure_container.endpoint.split("//", 1)[1].split("/", 1)[0].split(":")
    proxy = fault_proxy(host, int(port))
    proxied = AzureContainer(endpoint=_through(proxy, azure_container.endpoint), name=azure_container.name)
    backend = open_backend("azure", proxied.configuration, proxied.credentials, part_size=512 * KiB)
    data = os.urandom(4 * MiB)
    proxy.fail("http_503", times=4)
    with backend.open_writer("tenant/flaky.bpaf") as writer:
        for i in range(0, len(data), 256 * KiB):
            if i == 2 * MiB:  # the 503s have hit the first parts' requests; now cut two mid-block
                deadline = time.monotonic() + 30
                while proxy.faults < 4 and time.monotonic() < deadline:
                    time.sleep(0.01)
                proxy.fail("drop", times=2, after_bytes=128 * KiB)
            writer.write(data[i : i + 256 * KiB])
        writer.commit()
    assert proxy.faults == 6
    assert azure_container.client().download_blob("tenant/flaky.bpaf").readall() == data


def test_gcs_upload_rides_out_503s_on_chunks(fast_retries: None, gcs_bucket: GCSBucket, fault_proxy: Any) -> None:
    host, port = gcs_bucket.endpoint_url.split("//", 1)[1].split(":")
    proxy = fault_proxy(host, int(port))
    proxied = GCSBucket(endpoint_url=_through(proxy, gcs_bucket.endpoint_url), name=gcs_bucket.name)
    backend = open_backend("gcs", proxied.configuration, proxied.credentials, chunk_size=256 * KiB)
    data = os.urandom(2 * MiB)
    with backend.open_writer("tenant/flaky.bpaf") as writer:
        for i in range(0, len(data), 128 * KiB):
            if i == MiB:
                proxy.fail("http_503", times=3)  # mid-upload: chunk requests answered 503
            writer.write(data[i : i + 128 * KiB])
        writer.commit()
    assert proxy.faults == 3
    assert gcs_bucket.client().blob("tenant/flaky.bpaf").download_as_bytes() == data
