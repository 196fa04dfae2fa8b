"""S3 and S3-compatible (MinIO, moto, Ceph...) storage on boto3.

Writes are multipart uploads: data is buffered into parts of
:data:`PART_SIZE` bytes (constant memory whatever the artifact size), each sent
with ``upload_part`` as soon as it is full; ``commit()`` completes the upload,
which is when S3 makes the object visible, atomically. Any failure, exception
or ``abort()`` calls ``abort_multipart_upload`` so no parts linger (and cost).
An object smaller than one part is sent with a single ``put_object``: just as
atomic, one request instead of three.
"""

from __future__ import annotations

import logging
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

from .base import (
    StorageBackend,
    StorageWriter,
    StoredObject,
    StreamReader,
    buffered,
    clean_name,
    clean_prefix,
)
from .errors import StorageAuthError, StorageError, StorageNotFound, StorageUnavailable

logger = logging.getLogger(__name__)

#: Multipart part size. S3 needs >= 5 MiB for every part but the last.
PART_SIZE = 8 * 1024 * 1024

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
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}
)


class S3Writer(StorageWriter):
    """Buffers up to one part, uploads full parts, completes on commit."""

    def __init__(self, backend: S3Backend, name: str, key: str) -> None:
        super().__init__(name)
        self._backend = backend
        self._key = key
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            part = bytes(self._buffer[:PART_SIZE])
            del self._buffer[:PART_SIZE]
            self._upload_part(part)

    def _upload_part(self, data: bytes) -> None:
        client, bucket = self._backend.client, self._backend.bucket
        with self._backend.translate(self.name):
            if self._upload_id is None:
                response = client.create_multipart_upload(
                    Bucket=bucket, Key=self._key, **self._backend.put_extra
                )
                self._upload_id = response["UploadId"]
            number = len(self._parts) + 1
            response = client.upload_part(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=data,
            )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        logger.debug("Uploaded part %d of %s", number, self._key)

    def _commit(self) -> None:
        client, bucket = self._backend.client, self._backend.bucket
        if self._upload_id is None:
            with self._backend.translate(self.name):
                client.put_object(
                    Bucket=bucket,
                    Key=self._key,
                    Body=bytes(self._buffer),
                    **self._backend.put_extra,
                )
            self._buffer.clear()
            return
        if self._buffer:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        with self._backend.translate(self.name):
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )

    def _abort(self) -> None:
        self._buffer = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            with self._backend.translate(self.name):
                self._backend.client.abort_multipart_upload(
                    Bucket=self._backend.bucket, Key=self._key, UploadId=upload_id
                )


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
        max_attempts: int = 3,
    ) -> None:
        self.type = storage_type
        self.bucket: str = configuration["bucket"]
        self.endpoint_url: str | None = configuration.get("endpoint_url") or None
        prefix = (configuration.get("path_prefix") or "").strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.location = f"s3://{self.bucket}/{self.prefix}"
        custom = self.endpoint_url is not None
        style = configuration.get("addressing_style") or ("path" if custom else "auto")
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": max_attempts, "mode": "standard"},
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
            self.put_extra["ServerSideEncryption"] = encryption.get("algorithm", "AES256")
            if encryption.get("kms_key_id"):
                self.put_extra["SSEKMSKeyId"] = encryption["kms_key_id"]

    def key(self, name: str) -> str:
        """The S3 key of an object name."""
        return self.prefix + clean_name(name)

    def translate(self, what: str) -> _Translate:
        """Context manager turning boto errors into storage errors about ``what``."""
        return _Translate(self, what)

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
        with self.translate(name):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        return buffered(
            StreamReader(body.read, body.close, lambda exc: self.error(exc, name)),
            buffer_size=256 * 1024,
        )

    def delete(self, name: str) -> None:
        # S3's DeleteObject succeeds for a missing key: idempotent by design.
        with self.translate(name):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def discard_partials(self, name: str) -> int:
        """Abort multipart uploads of ``name`` left open by a writer that died."""
        key, removed = self.key(name), 0
        with self.translate(name):
            response = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
            for upload in response.get("Uploads", []):
                if upload["Key"] == key:
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
                    removed += 1
        return removed

    def exists(self, name: str) -> bool:
        try:
            self.size(name)
        except StorageNotFound:
            return False
        return True

    def size(self, name: str) -> int:
        with self.translate(name):
            response = self.client.head_object(Bucket=self.bucket, Key=self.key(name))
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
