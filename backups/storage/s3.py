"""S3 and S3-compatible (MinIO, moto, Ceph...) storage on boto3.

Writes are multipart uploads from a non-seekable stream, with constant memory:

- **Growing parts.** S3 allows 10,000 parts per upload, so a fixed part size caps
  the object (8 MiB parts: 78 GiB). Parts start at :data:`PART_SIZE` and double
  every tenth of the part limit (8 MiB x 1,000, 16 MiB x 1,000, ... 4 GiB x 1,000),
  so 10,000 parts hold more than S3's 5 TiB object limit while a typical backup
  still uses small parts.
- **Concurrent parts, bounded memory.** Up to ``concurrency`` parts upload at once
  on a small thread pool while the next one fills; the producer waits when all
  slots are busy. Each part buffer is a ``SpooledTemporaryFile`` holding at most
  ``memory_budget / (concurrency + 1)`` bytes in memory and spilling to a temp
  file beyond that, so memory stays under ``memory_budget`` whatever the part size.
- **Retries per request.** Every request (each part, create, complete, abort) goes
  through the storage retry policy (``retry.py``: exponential backoff with jitter on
  5xx, timeouts, refused or dropped connections); botocore's own retries are off so
  the two do not multiply.
- **Atomic, nothing left behind.** ``commit()`` completes the upload, which is when S3
  makes the object visible. Any failure, exception or ``abort()`` waits for the parts
  in flight and aborts the upload (retried too); an upload whose abort still failed
  (the storage stayed down) is removed later by the sweep of abandoned uploads
  (:meth:`S3Backend.sweep_abandoned`). An object smaller than one part is one
  ``put_object``: just as atomic, one request instead of three.

boto3's ``upload_fileobj`` (TransferManager) also uploads a non-seekable stream in
concurrent parts, but with a fixed part size (so the same 10,000-part cap) and whole
parts held in memory; see the README's storage section for the measurements.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from . import parts
from .base import (
    StorageBackend,
    StoredObject,
    StreamReader,
    buffered,
    clean_name,
    clean_prefix,
)
from .errors import StorageAuthError, StorageError, StorageNotFound, StorageUnavailable
from .retry import RetryPolicy, default_policy

logger = logging.getLogger(__name__)

#: Size of the first multipart parts. S3 needs >= 5 MiB for every part but the last.
PART_SIZE = 8 * 1024 * 1024
#: S3's limits: parts per upload, bytes per part, bytes per object.
MAX_PARTS = 10_000
MAX_PART_SIZE = 5 * 1024**3
MAX_OBJECT_SIZE = 5 * 1024**4
#: Parts uploading at once per writer (plus one filling).
CONCURRENCY = 4
#: Bytes of part buffers one writer keeps in memory; the rest spills to temp files.
MEMORY_BUDGET = 64 * 1024 * 1024

_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
        "AllAccessDisabled",
        "AccountProblem",
        "403",
    }
)
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "NoSuchUpload", "404", "NotFound"})
_TRANSIENT_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"})


def part_size_for(number: int, *, initial: int = PART_SIZE, max_parts: int = MAX_PARTS) -> int:
    """Size of S3 part ``number`` (1-based): ``initial``, doubled every tenth of ``max_parts``."""
    return parts.part_size_for(number, initial=initial, max_parts=max_parts, max_part_size=MAX_PART_SIZE)


class S3Writer(parts.PartWriter):
    """A multipart upload: growing parts sent concurrently, completed on commit."""

    max_part_size = MAX_PART_SIZE
    limit_text = f"{MAX_OBJECT_SIZE // 1024**4} TiB on S3"

    def __init__(self, backend: S3Backend, name: str, key: str) -> None:
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
        self._key = key
        self._upload_id: str | None = None

    def _start(self) -> None:
        backend = self._backend
        response = backend.call(
            "create_multipart_upload",
            f"{self.name} (start upload)",
            policy=backend.policy,
            Bucket=backend.bucket,
            Key=self._key,
            **backend.put_extra,
        )
        self._upload_id = response["UploadId"]

    def _send(self, part: parts.Part) -> str:
        backend = self._backend
        response = backend.call(
            "upload_part",
            f"{self.name} (part {part.number})",
            policy=_ONCE,
            Bucket=backend.bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=part.number,
            Body=part.file,
            ContentLength=part.length,
        )
        return response["ETag"]

    def _send_whole(self, body: bytes) -> None:
        backend = self._backend
        backend.call(
            "put_object", self.name, policy=_ONCE, Bucket=backend.bucket, Key=self._key, Body=body, **backend.put_extra
        )

    def _finish(self, tokens: list[str]) -> None:
        backend = self._backend
        etags = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(tokens, start=1)]
        attempts = 0

        def complete() -> None:
            nonlocal attempts
            attempts += 1
            try:
                backend.call(
                    "complete_multipart_upload",
                    f"{self.name} (complete upload)",
                    policy=_ONCE,
                    Bucket=backend.bucket,
                    Key=self._key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": etags},
                )
            except StorageNotFound:
                # A retry after a lost answer: the first attempt may have completed it.
                if attempts > 1 and self._completed_object_matches(len(etags)):
                    return
                raise

        backend.policy.call(complete, what=f"complete {self.name}")

    def _completed_object_matches(self, part_count: int) -> bool:
        try:
            head = self._backend.call(
                "head_object", self.name, policy=_ONCE, Bucket=self._backend.bucket, Key=self._key
            )
        except StorageError:
            return False
        etag = str(head.get("ETag", "")).strip('"')
        return int(head["ContentLength"]) == self.bytes_written and etag.endswith(f"-{part_count}")

    def _cancel(self) -> None:
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            self._backend.abort_upload(self._key, upload_id, what=self.name, policy=self._backend.policy)


#: One attempt: for calls that sit inside a retry loop of their own.
_ONCE = RetryPolicy(attempts=1)


class S3Backend(StorageBackend):
    """A bucket (plus optional ``path_prefix``) on AWS S3 or an S3-compatible server."""

    type = "s3"

    def __init__(
        self,
        configuration: dict[str, Any],
        credentials: dict[str, Any],
        *,
        storage_type: str = "s3",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        part_size: int = PART_SIZE,
        max_parts: int = MAX_PARTS,
        concurrency: int = CONCURRENCY,
        memory_budget: int = MEMORY_BUDGET,
        spool_dir: str | None = None,
    ) -> None:
        self.type = storage_type
        self.bucket: str = configuration["bucket"]
        self.endpoint_url: str | None = configuration.get("endpoint_url") or None
        prefix = (configuration.get("path_prefix") or "").strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.location = f"s3://{self.bucket}/{self.prefix}"
        self.policy = retry or default_policy()
        if max_attempts is not None:
            self.policy = RetryPolicy(
                attempts=max_attempts,
                initial=self.policy.initial,
                maximum=self.policy.maximum,
                deadline=self.policy.deadline,
            )
        # Calls outside a writer (reads, deletes, listings, the reaper's cleanup) answer someone
        # waiting or run inside a time-limited task: a short retry, not the writer's patience.
        self.request_policy = self.policy.quick()
        self.part_size = int(part_size)
        self.max_parts = int(max_parts)
        self.concurrency = max(1, int(concurrency))
        self.memory_budget = int(memory_budget)
        self.spool_dir = spool_dir
        custom = self.endpoint_url is not None
        style = configuration.get("addressing_style") or ("path" if custom else "auto")
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # One attempt per call: retries are ours (retry.py), per request, so that
            # botocore's and ours do not multiply.
            retries={"total_max_attempts": 1, "mode": "standard"},
            # Every part in flight needs its own connection.
            max_pool_connections=max(10, self.concurrency * 2),
            s3={"addressing_style": style},
            signature_version="s3v4",
            # Third-party S3 servers (older MinIO, Ceph) reject the default
            # CRC checksums newer botocore adds to every upload.
            request_checksum_calculation="when_required" if custom else "when_supported",
            response_checksum_validation="when_required" if custom else "when_supported",
        )
        self.client = boto3.session.Session().client(
            "s3",
            region_name=configuration.get("region") or "us-east-1",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=credentials.get("access_key_id"),
            aws_secret_access_key=credentials.get("secret_access_key"),
            aws_session_token=credentials.get("session_token") or None,
            config=config,
        )
        self.put_extra: dict[str, str] = {}
        encryption = configuration.get("encryption") or {}
        if encryption and encryption.get("enabled", True):
            # A KMS key means SSE-KMS, whatever the algorithm says (workspace-backup-api.md
            # writes "AES256" with a kms_key_id: the KMS key is the AES-256 key).
            kms_key = encryption.get("kms_key_id")
            self.put_extra["ServerSideEncryption"] = "aws:kms" if kms_key else encryption.get("algorithm", "AES256")
            if kms_key:
                self.put_extra["SSEKMSKeyId"] = kms_key

    def key(self, name: str) -> str:
        """The S3 key of an object name."""
        return self.prefix + clean_name(name)

    def translate(self, what: str) -> _Translate:
        """Context manager turning boto errors into storage errors about ``what``."""
        return _Translate(self, what)

    def call(self, method: Any, what: str, *, policy: RetryPolicy | None = None, **kwargs: Any) -> Any:
        """Call a client method (by name) or a function, translating errors and retrying
        transient ones per the retry policy."""
        func = getattr(self.client, method) if isinstance(method, str) else method

        def once() -> Any:
            with self.translate(what):
                return func(**kwargs)

        return (policy or self.request_policy).call(once, what=what)

    def abort_upload(self, key: str, upload_id: str, *, what: str, policy: RetryPolicy | None = None) -> None:
        """Abort one multipart upload, retried like any request; gone already is fine."""
        try:
            self.call(
                "abort_multipart_upload",
                f"{what} (abort upload)",
                policy=policy,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
            )
        except StorageNotFound:
            return

    def sweep_abandoned(self, *, prefixes: list[str], older_than: timedelta) -> int:
        """Abort multipart uploads under ``prefixes`` started more than ``older_than`` ago.

        What a writer leaves when the storage went away before its abort got through,
        or when its worker was killed. Returns how many uploads were aborted.
        """
        cutoff = datetime.now(UTC) - older_than
        aborted = 0
        for prefix in prefixes:
            full = self.prefix + clean_prefix(prefix)
            paginator = self.client.get_paginator("list_multipart_uploads")
            with self.translate(f"bucket '{self.bucket}'"):
                pages = list(paginator.paginate(Bucket=self.bucket, Prefix=full))
            for page in pages:
                for upload in page.get("Uploads", []):
                    started = upload.get("Initiated")
                    if started is not None and started.tzinfo is None:
                        started = started.replace(tzinfo=UTC)
                    if started is not None and started > cutoff:
                        continue
                    self.abort_upload(upload["Key"], upload["UploadId"], what=upload["Key"])
                    aborted += 1
        return aborted

    def error(self, exc: Exception, what: str) -> StorageError:
        """Map a boto3/botocore exception to a storage error (no secrets in messages)."""
        where = self.endpoint_url or "S3"
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchBucket":
                return StorageNotFound(f"Bucket '{self.bucket}' does not exist")
            if code in ("InvalidAccessKeyId", "InvalidClientTokenId"):
                return StorageAuthError("Access denied: the access key ID is not recognised")
            if code == "SignatureDoesNotMatch":
                return StorageAuthError("Access denied: the secret access key is wrong")
            if code in ("ExpiredToken", "InvalidToken"):
                return StorageAuthError("Access denied: the session token is invalid or expired")
            if code in _AUTH_CODES or status == 403:
                return StorageAuthError(f"Access denied to bucket '{self.bucket}' ({code or 403})")
            if code in _NOT_FOUND_CODES or status == 404:
                return StorageNotFound(f"{what} does not exist in bucket '{self.bucket}'")
            if code in _TRANSIENT_CODES or (status is not None and status >= 500):
                return StorageUnavailable(f"{where} is unavailable ({code or status})")
            return StorageError(f"S3 error on {what}: {code} {error.get('Message', '')}".strip())
        if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
            return StorageUnavailable(f"Timed out talking to {where}")
        if isinstance(exc, EndpointConnectionError):
            return StorageUnavailable(f"Could not connect to {where} (connection refused?)")
        if isinstance(exc, NoCredentialsError):
            return StorageAuthError("No S3 credentials configured")
        if isinstance(exc, BotoCoreError):
            return StorageUnavailable(f"Could not talk to {where}: {type(exc).__name__}")
        return StorageError(f"S3 error on {what}: {type(exc).__name__}")

    def connect(self) -> None:
        self.request_policy.call(self._connect_once, what=f"bucket '{self.bucket}'")

    def _connect_once(self) -> None:
        with self.translate(f"bucket '{self.bucket}'"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                # HEAD has no body: a 404 here can only be the bucket.
                if status == 404:
                    raise StorageNotFound(f"Bucket '{self.bucket}' does not exist") from None
                if status not in (400, 403):
                    raise
                # A bodiless 403 cannot tell a wrong secret from an unknown key
                # or a missing permission; a listing's error body can.
                self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix, MaxKeys=1)

    def open_writer(self, name: str) -> S3Writer:
        return S3Writer(self, name, self.key(name))

    def open_reader(self, name: str) -> BinaryIO:
        key = self.key(name)
        body = self.call("get_object", name, Bucket=self.bucket, Key=key)["Body"]
        return buffered(
            StreamReader(body.read, body.close, lambda exc: self.error(exc, name)),
            buffer_size=256 * 1024,
        )

    def delete(self, name: str) -> None:
        # S3's DeleteObject succeeds for a missing key: idempotent by design.
        self.call("delete_object", name, Bucket=self.bucket, Key=self.key(name))

    def discard_partials(self, name: str) -> int:
        """Abort multipart uploads of ``name`` left open by a writer that died."""
        key, removed = self.key(name), 0
        response = self.call("list_multipart_uploads", name, Bucket=self.bucket, Prefix=key)
        for upload in response.get("Uploads", []):
            if upload["Key"] == key:
                self.abort_upload(key, upload["UploadId"], what=name)
                removed += 1
        return removed

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
        except StorageNotFound:
            return False
        return True

    def size(self, name: str) -> int:
        response = self.call("head_object", name, Bucket=self.bucket, Key=self.key(name))
        return int(response["ContentLength"])

    def list(self, prefix: str = "") -> list[StoredObject]:
        prefix = clean_prefix(prefix)
        found: list[StoredObject] = []
        paginator = self.client.get_paginator("list_objects_v2")
        with self.translate(f"bucket '{self.bucket}'"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    found.append(StoredObject(name, int(item["Size"]), item.get("LastModified")))
        found.sort(key=lambda obj: obj.name)
        return found

    def presigned_url(self, name: str, expires_in: int = 3600) -> str | None:
        with self.translate(name):
            return self.client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self.key(name)},
                ExpiresIn=int(expires_in),
            )

    def close(self) -> None:
        # Nothing to do: the client's HTTP pool is reused by the next call.
        return None


class _Translate:
    """``with backend.translate(what):`` re-raises boto errors as storage errors."""

    def __init__(self, backend: S3Backend, what: str) -> None:
        self._backend = backend
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or isinstance(exc, StorageError):
            return False
        if isinstance(exc, ClientError | BotoCoreError):
            raise self._backend.error(exc, self._what) from exc
        return False
