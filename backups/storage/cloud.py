"""Google Cloud Storage and Azure Blob Storage, on django-storages' backends.

django-storages (``GoogleCloudStorage``, ``AzureStorage``) holds the client, the
container or bucket and the ``location`` prefix, and does what it does well: existence,
size, delete, listing, signed URLs. Two things stay ours, beside it:

- **Writing.** django-storages' ``File.write`` for both providers spools the whole file to
  a local temporary file and uploads it on ``close()``: a 100 GiB artifact would need
  100 GiB of local disk and be uploaded only after the dump ended. Our writers stream:
  Azure stages blocks while the dump runs (:class:`~backups.storage.parts.PartWriter`:
  growing blocks, several in flight, a fixed memory budget) and commits the block list
  on ``commit()``; GCS uses google-cloud-storage's resumable upload (``BlobWriter``), one
  chunk in memory, finalised on ``commit()``. Either way nothing is visible under the
  final name until then.
- **Reading.** django-storages' ``open()`` downloads the whole blob to a temporary file
  before the first byte is returned; restores and verifications read the artifact as a
  stream instead (``BlobReader`` ranged reads, Azure's chunked ``download_blob``).

Retries: the SDKs' own retry policies are turned off (Azure) or replaced (GCS chunks) by
the storage retry policy (``retry.py``), so a transient failure costs one request.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from .base import (
    StorageBackend,
    StorageWriter,
    StoredObject,
    StreamReader,
    buffered,
    clean_name,
    clean_prefix,
)
from .errors import (
    StorageAuthError,
    StorageError,
    StorageNotFound,
    StorageNotInstalled,
    StorageUnavailable,
)
from .parts import Part, PartWriter
from .retry import RetryPolicy, default_policy

logger = logging.getLogger(__name__)

#: What requirements/base.txt needs for each type.
REQUIRED_PACKAGES = {
    "gcs": ("google.cloud.storage", "google-cloud-storage==3.17.1"),
    "azure": ("azure.storage.blob", "azure-storage-blob==12.31.1"),
}

#: First Azure block size; blocks grow like S3 parts (50,000 blocks of at most 4000 MiB).
AZURE_BLOCK_SIZE = 8 * 1024 * 1024
AZURE_MAX_BLOCKS = 50_000
AZURE_MAX_BLOCK_SIZE = 4000 * 1024 * 1024
#: GCS resumable upload chunk (a multiple of 256 KiB): the memory one writer holds.
GCS_CHUNK_SIZE = 8 * 1024 * 1024
CONCURRENCY = 4
MEMORY_BUDGET = 64 * 1024 * 1024
READ_CHUNK = 4 * 1024 * 1024


def is_available(storage_type: str) -> bool:
    """True if the client library of ``storage_type`` can be imported."""
    module, _ = REQUIRED_PACKAGES[storage_type]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _require(storage_type: str) -> None:
    if not is_available(storage_type):
        _module, requirement = REQUIRED_PACKAGES[storage_type]
        package = requirement.split("==", 1)[0]
        raise StorageNotInstalled(
            f"{package} is not installed; {storage_type} storage needs {requirement}",
            details={"package": requirement},
        )


def _prefix(configuration: dict[str, Any]) -> str:
    prefix = (configuration.get("path_prefix") or "").strip("/")
    return f"{prefix}/" if prefix else ""


def open_gcs(configuration: dict[str, Any], credentials: dict[str, Any], **options: Any) -> StorageBackend:
    _require("gcs")
    return GCSBackend(configuration, credentials, **options)


def open_azure(configuration: dict[str, Any], credentials: dict[str, Any], **options: Any) -> StorageBackend:
    _require("azure")
    return AzureBackend(configuration, credentials, **options)


# -- Azure ------------------------------------------------------------------------------------


def _azure_error(exc: BaseException, what: str, where: str) -> StorageError:
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ResourceNotFoundError):
        code = getattr(exc, "error_code", "") or ""
        if "Container" in str(code):
            return StorageNotFound(f"Container of {where} does not exist")
        return StorageNotFound(f"{what} does not exist in {where}")
    if isinstance(exc, ClientAuthenticationError):
        return StorageAuthError(f"Access denied to {where}: the account key or signature is not accepted")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        if status == 403:
            return StorageAuthError(f"Access denied to {where}")
        if status >= 500 or status in (408, 429):
            return StorageUnavailable(f"{where} is unavailable ({status})")
        return StorageError(f"Azure error on {what}: {getattr(exc, 'error_code', '') or status}")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return StorageUnavailable(f"Could not talk to {where}: {type(exc).__name__}")
    if isinstance(exc, AzureError | OSError):
        return StorageUnavailable(f"Could not talk to {where}: {type(exc).__name__}")
    return StorageError(f"Azure error on {what}: {type(exc).__name__}")


class _BlockBody:
    """A part's buffer as the body of a request. azure-core deep-copies a failed request for
    its retry history; copying a temporary file makes a broken twin that complains when it is
    collected, so copies share the original (the body is read again from the start anyway)."""

    def __init__(self, file: Any) -> None:
        self._file = file

    def read(self, size: int = -1) -> bytes:
        return self._file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def __deepcopy__(self, memo: dict[int, Any]) -> _BlockBody:
        return self


class AzureWriter(PartWriter):
    """Staged blocks (growing, several in flight), published by committing the block list."""

    max_part_size = AZURE_MAX_BLOCK_SIZE
    limit_text = "about 190 TiB on Azure"

    def __init__(self, backend: AzureBackend, name: str) -> None:
        super().__init__(
            name,
            policy=backend.policy,
            part_size=backend.part_size,
            max_parts=backend.max_parts,
            concurrency=backend.concurrency,
            memory_budget=backend.memory_budget,
            spool_dir=backend.spool_dir,
        )
        self._backend = backend
        self._blob = backend.container.get_blob_client(backend.key(name))
        # Block ids of one blob must all have the same length; a random stem per writer keeps
        # two writers of the same name apart.
        self._stem = base64.b16encode(os.urandom(6)).decode()

    def _call(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            raise _azure_error(exc, self.name, self._backend.location) from exc

    def _start(self) -> None:
        return None

    def _send(self, part: Part) -> str:
        block_id = base64.b64encode(f"{self._stem}-{part.number:06d}".encode()).decode()
        self._call(
            self._blob.stage_block, block_id, _BlockBody(part.file), length=part.length, timeout=self._backend.timeout
        )
        return block_id

    def _finish(self, tokens: list[str]) -> None:
        from azure.storage.blob import BlobBlock

        blocks = [BlobBlock(block_id=token) for token in tokens]
        self.policy.call(
            self._call,
            self._blob.commit_block_list,
            blocks,
            timeout=self._backend.timeout,
            what=f"{self.name} (commit)",
        )

    def _send_whole(self, body: bytes) -> None:
        self._call(self._blob.upload_blob, body, overwrite=True, timeout=self._backend.timeout)

    def _cancel(self) -> None:
        # Azure has no call to drop staged blocks; a blob that has only uncommitted blocks
        # can be deleted (which drops them). One that has a committed version keeps them
        # until its next commit, and Azure discards uncommitted blocks after 7 days.
        self._backend.discard_uncommitted(self._blob.blob_name)


class AzureBackend(StorageBackend):
    """A container (plus optional ``path_prefix``) on Azure Blob Storage (or Azurite)."""

    type = "azure"

    def __init__(
        self,
        configuration: dict[str, Any],
        credentials: dict[str, Any],
        *,
        retry: RetryPolicy | None = None,
        timeout: int = 60,
        part_size: int = AZURE_BLOCK_SIZE,
        max_parts: int = AZURE_MAX_BLOCKS,
        concurrency: int = CONCURRENCY,
        memory_budget: int = MEMORY_BUDGET,
        spool_dir: str | None = None,
    ) -> None:
        from azure.storage.blob import BlobServiceClient
        from storages.backends.azure_storage import AzureStorage

        self.policy = retry or default_policy()
        self.request_policy = self.policy.quick()  # outside writers: someone is waiting
        self.timeout = int(timeout)
        self.part_size, self.max_parts = int(part_size), int(max_parts)
        self.concurrency, self.memory_budget, self.spool_dir = int(concurrency), int(memory_budget), spool_dir
        self.container_name: str = configuration["container"]
        self.prefix = _prefix(configuration)
        connection_string = credentials.get("connection_string") or None
        account = configuration.get("account_name") or ""
        if connection_string and not account:
            fields = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
            account = fields.get("AccountName", "")
        self.location = f"azure://{account}/{self.container_name}/{self.prefix}"
        # Retries are ours (retry.py), per request: the SDK's own (15 s, 45 s, ...) are off.
        client_options = {"retry_total": 0, "connection_timeout": 10, "read_timeout": self.timeout}

        class _Storage(AzureStorage):
            def _get_service_client(inner) -> BlobServiceClient:
                if inner.connection_string is not None:
                    return BlobServiceClient.from_connection_string(inner.connection_string, **client_options)
                return super()._get_service_client()

        self.storage = _Storage(
            account_name=account or None,
            account_key=credentials.get("account_key") or None,
            connection_string=connection_string,
            azure_container=self.container_name,
            location=self.prefix.rstrip("/"),
            endpoint_suffix=configuration.get("endpoint_suffix") or "core.windows.net",
            client_options=dict(client_options),
            timeout=self.timeout,
            expiration_secs=3600,
            overwrite_files=True,
        )

    @property
    def container(self) -> Any:
        return self.storage.client

    def key(self, name: str) -> str:
        return self.prefix + clean_name(name)

    def _do(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        def once() -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                raise _azure_error(exc, what, self.location) from exc

        return self.request_policy.call(once, what=what)

    def connect(self) -> None:
        if not self._do(f"container '{self.container_name}'", self.container.exists):
            raise StorageNotFound(f"Container '{self.container_name}' does not exist")

    def open_writer(self, name: str) -> StorageWriter:
        return AzureWriter(self, name)

    def open_reader(self, name: str) -> BinaryIO:
        blob = self.container.get_blob_client(self.key(name))
        downloader = self._do(name, blob.download_blob, max_concurrency=1, timeout=self.timeout)
        return buffered(
            StreamReader(downloader.read, None, lambda exc: _azure_error(exc, name, self.location)),
            buffer_size=READ_CHUNK,
        )

    def delete(self, name: str) -> None:
        self._do(name, self.storage.delete, clean_name(name))

    def exists(self, name: str) -> bool:
        return bool(self._do(name, self.storage.exists, clean_name(name)))

    def size(self, name: str) -> int:
        return int(self._do(name, self.storage.size, clean_name(name)))

    def list(self, prefix: str = "") -> list[StoredObject]:
        prefix = clean_prefix(prefix)

        def listing() -> list[StoredObject]:
            found = []
            for blob in self.container.list_blobs(name_starts_with=self.prefix + prefix, timeout=self.timeout):
                found.append(StoredObject(blob.name[len(self.prefix) :], int(blob.size), blob.last_modified))
            return found

        found = self._do(f"container '{self.container_name}'", listing)
        return sorted(found, key=lambda obj: obj.name)

    def presigned_url(self, name: str, expires_in: int = 3600) -> str | None:
        return self._do(name, self.storage.url, clean_name(name), expire=int(expires_in))

    def discard_uncommitted(self, key: str) -> bool:
        """Delete ``key`` if it holds only uncommitted blocks; True if it did."""
        from azure.core.exceptions import ResourceNotFoundError

        blob = self.container.get_blob_client(key)
        with contextlib.suppress(StorageNotFound):
            if self._do(key, blob.exists):
                return False  # a committed version: its next commit drops the blocks
        try:
            self._do(key, blob.delete_blob)
        except StorageNotFound:
            return False
        except ResourceNotFoundError:  # pragma: no cover - translated above
            return False
        return True

    def discard_partials(self, name: str) -> int:
        return int(self.discard_uncommitted(self.key(name)))

    def _uncommitted(self, prefix: str) -> Iterator[Any]:
        committed = {b.name for b in self.container.list_blobs(name_starts_with=prefix)}
        for blob in self.container.list_blobs(name_starts_with=prefix, include=["uncommittedblobs"]):
            if blob.name not in committed:
                yield blob

    def sweep_abandoned(self, *, prefixes: list[str], older_than: timedelta) -> int:
        """Delete blobs under ``prefixes`` that hold only uncommitted blocks older than ``older_than``."""
        cutoff = datetime.now(UTC) - older_than
        removed = 0
        for prefix in prefixes:
            full = self.prefix + clean_prefix(prefix)
            stale = self._do(f"container '{self.container_name}'", lambda full=full: list(self._uncommitted(full)))
            for blob in stale:
                changed = blob.last_modified or blob.creation_time
                if changed is not None and changed > cutoff:
                    continue
                if self.discard_uncommitted(blob.name):
                    removed += 1
        return removed


# -- Google Cloud Storage ------------------------------------------------------------------------


def _gcs_error(exc: BaseException, what: str, where: str) -> StorageError:
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, gexc.NotFound):
        return StorageNotFound(f"{what} does not exist in {where}")
    if isinstance(exc, gexc.Unauthorized | gexc.Forbidden | auth_exc.RefreshError):
        return StorageAuthError(f"Access denied to {where}")
    if isinstance(exc, gexc.ServerError | gexc.TooManyRequests | gexc.RequestRangeNotSatisfiable):
        return StorageUnavailable(f"{where} is unavailable ({getattr(exc, 'code', '')})")
    if isinstance(exc, requests.ConnectionError | requests.Timeout | auth_exc.TransportError | ConnectionError):
        return StorageUnavailable(f"Could not talk to {where}: {type(exc).__name__}")
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        if status == 404:
            return StorageNotFound(f"{what} does not exist in {where}")
        if status in (401, 403):
            return StorageAuthError(f"Access denied to {where}")
        if status >= 500 or status in (408, 429):
            return StorageUnavailable(f"{where} is unavailable ({status})")
    return StorageError(f"GCS error on {what}: {type(exc).__name__}: {exc}"[:300])


def _gcs_retry(policy: RetryPolicy) -> Any:
    """google-api-core's retry (exponential, jittered), configured like ours."""
    from google.api_core.retry import Retry
    from google.cloud.storage.retry import _should_retry

    if policy.attempts <= 1:
        return None
    return Retry(
        predicate=_should_retry,
        initial=max(policy.initial, 0.01),
        maximum=policy.maximum,
        multiplier=2.0,
        timeout=policy.deadline,
    )


class GCSWriter(StorageWriter):
    """A resumable upload (google-cloud-storage's ``BlobWriter``), finalised on commit.

    One chunk is in memory; a chunk that fails transiently is sent again (same byte range)
    under the retry policy; the object exists only once the last chunk is sent.
    """

    def __init__(self, backend: GCSBackend, name: str) -> None:
        super().__init__(name)
        self._backend = backend
        blob = backend.storage.bucket.blob(backend.key(name))
        self._writer = blob.open(
            "wb",
            chunk_size=backend.chunk_size,
            ignore_flush=True,
            retry=_gcs_retry(backend.policy),
            content_type="application/octet-stream",
        )

    def _guard(self, func: Any, *args: Any) -> Any:
        try:
            return func(*args)
        except Exception as exc:
            raise _gcs_error(exc, self.name, self._backend.location) from exc

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._guard(self._writer.write, bytes(data))

    def _commit(self) -> None:
        self._guard(self._writer.close)

    def _abort(self) -> None:
        # Cancels the resumable session (DELETE on its URL): nothing was finalised.
        self._guard(self._writer.terminate)


class GCSBackend(StorageBackend):
    """A bucket (plus optional ``path_prefix``) on Google Cloud Storage (or an emulator)."""

    type = "gcs"

    def __init__(
        self,
        configuration: dict[str, Any],
        credentials: dict[str, Any],
        *,
        retry: RetryPolicy | None = None,
        chunk_size: int = GCS_CHUNK_SIZE,
        **_ignored: Any,
    ) -> None:
        import json

        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud.storage import Client
        from google.oauth2 import service_account
        from storages.backends.gcloud import GoogleCloudStorage

        self.policy = retry or default_policy()
        self.request_policy = self.policy.quick()  # outside writers: someone is waiting
        self.chunk_size = int(chunk_size)
        self.bucket_name: str = configuration["bucket"]
        self.prefix = _prefix(configuration)
        self.endpoint_url: str | None = configuration.get("endpoint_url") or None
        self.location = f"gs://{self.bucket_name}/{self.prefix}"
        raw = credentials.get("service_account_json")
        info = json.loads(raw) if isinstance(raw, str) and raw else raw
        if info:
            try:
                creds: Any = service_account.Credentials.from_service_account_info(info)
            except (ValueError, KeyError) as exc:  # never echo the key itself
                raise StorageAuthError(f"The service account key cannot be used: {type(exc).__name__}") from None
            project = configuration.get("project_id") or info.get("project_id")
        else:  # an emulator or GCS-compatible server without authentication
            creds, project = AnonymousCredentials(), configuration.get("project_id") or "anonymous"
        options = ClientOptions(api_endpoint=self.endpoint_url) if self.endpoint_url else None

        def make_client() -> Any:
            return Client(project=project, credentials=creds, client_options=options)

        class _Storage(GoogleCloudStorage):
            @property
            def client(inner) -> Any:
                if inner._client is None:
                    inner._client = make_client()
                return inner._client

        self.signing = bool(info)
        self.storage = _Storage(
            bucket_name=self.bucket_name,
            location=self.prefix.rstrip("/"),
            project_id=project,
            credentials=creds,
            file_overwrite=True,
        )

    def key(self, name: str) -> str:
        return self.prefix + clean_name(name)

    def _do(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        def once() -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                raise _gcs_error(exc, what, self.location) from exc

        return self.request_policy.call(once, what=what)

    def connect(self) -> None:
        bucket = self.storage.bucket
        if not self._do(f"bucket '{self.bucket_name}'", bucket.exists):
            raise StorageNotFound(f"Bucket '{self.bucket_name}' does not exist")

    def open_writer(self, name: str) -> StorageWriter:
        return GCSWriter(self, name)

    def open_reader(self, name: str) -> BinaryIO:
        blob = self.storage.bucket.blob(self.key(name))
        self._do(name, blob.reload)  # NotFound now, not at the first read
        reader = blob.open("rb", chunk_size=READ_CHUNK)
        return buffered(
            StreamReader(reader.read, reader.close, lambda exc: _gcs_error(exc, name, self.location)),
            buffer_size=READ_CHUNK,
        )

    def delete(self, name: str) -> None:
        self._do(name, self.storage.delete, clean_name(name))

    def exists(self, name: str) -> bool:
        return bool(self._do(name, self.storage.exists, clean_name(name)))

    def size(self, name: str) -> int:
        return int(self._do(name, self.storage.size, clean_name(name)))

    def list(self, prefix: str = "") -> list[StoredObject]:
        prefix = clean_prefix(prefix)

        def listing() -> list[StoredObject]:
            return [
                StoredObject(blob.name[len(self.prefix) :], int(blob.size or 0), blob.updated)
                for blob in self.storage.bucket.list_blobs(prefix=self.prefix + prefix)
            ]

        return sorted(self._do(f"bucket '{self.bucket_name}'", listing), key=lambda obj: obj.name)

    def presigned_url(self, name: str, expires_in: int = 3600) -> str | None:
        if not self.signing:
            return None  # anonymous access (an emulator) cannot sign: the platform streams instead
        return self._do(
            name, self.storage.url, clean_name(name), parameters={"expiration": timedelta(seconds=int(expires_in))}
        )
