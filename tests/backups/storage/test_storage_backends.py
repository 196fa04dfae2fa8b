"""Storage backends against real parts: a local directory, moto's S3 server, an SFTP server."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from backups.storage import (
    InvalidObjectName,
    InvalidStorageConfig,
    StorageAuthError,
    StorageBackend,
    StorageNotFound,
    iter_chunks,
    open_backend,
    probe,
    validate_config,
)
from backups.storage.s3 import PART_SIZE
from tests.fixtures.services import AzureContainer, GCSBucket, S3Bucket, SSHServerInfo

AWS_CREDS = {
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
SERVICE_ACCOUNT = {
    "type": "service_account",
    "project_id": "acme",
    "client_email": "backup@acme.iam.gserviceaccount.com",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n",
}


# -- validation ---------------------------------------------------------------------


def test_seed_example_s3_configuration_is_valid() -> None:
    # workspace-backup-api.md, "Create Backup Storage" request body.
    configuration = {
        "bucket": "hexabase-backups",
        "region": "us-west-2",
        "path_prefix": "ws-123/",
        "encryption": {
            "enabled": True,
            "algorithm": "AES256",
        },
    }
    assert validate_config("s3", configuration, AWS_CREDS) == {}


def test_seed_error_example_bucket_and_access_key() -> None:
    # workspace-backup-api.md, "Error Responses": INVALID_STORAGE_CONFIG details.
    errors = validate_config(
        "s3",
        {"bucket": "Hexabase_Backups", "region": "us-west-2"},
        {**AWS_CREDS, "access_key_id": "not-a-key"},
    )
    assert errors == {
        "bucket": "Bucket name contains invalid characters",
        "credentials": "Invalid access key format",
    }


@pytest.mark.parametrize(
    ("bucket", "message"),
    [
        ("ab", "Bucket name must be between 3 and 63 characters long"),
        ("a" * 64, "Bucket name must be between 3 and 63 characters long"),
        ("my_bucket", "Bucket name contains invalid characters"),
        ("-bucket", "Bucket name must begin and end with a letter or number"),
        ("my..bucket", "Bucket name must not contain two adjacent periods"),
        ("192.168.1.10", "Bucket name must not be formatted as an IP address"),
        ("xn--bucket", "Bucket name uses a reserved prefix or suffix"),
        ("", "Bucket name is required"),
    ],
)
def test_s3_bucket_naming_rules(bucket: str, message: str) -> None:
    errors = validate_config("s3", {"bucket": bucket, "region": "us-west-2"}, AWS_CREDS)
    assert errors == {"bucket": message}


@pytest.mark.parametrize("bucket", ["abc", "my-bucket.2024", "a" * 63, "1.2.3"])
def test_s3_accepts_valid_bucket_names(bucket: str) -> None:
    assert validate_config("s3", {"bucket": bucket, "region": "eu-central-1"}, AWS_CREDS) == {}


@pytest.mark.parametrize(
    ("configuration", "field", "message"),
    [
        ({"region": "US-WEST-2"}, "region", "Invalid region format (expected e.g. 'us-west-2')"),
        ({"region": "uswest"}, "region", "Invalid region format (expected e.g. 'us-west-2')"),
        ({"region": None}, "region", "Region is required"),
        ({"path_prefix": "/abs/"}, "path_prefix", "Path prefix must be relative (no leading '/')"),
        ({"path_prefix": "a/../b"}, "path_prefix", "Path prefix must not contain '..'"),
        (
            {"endpoint_url": "ftp://minio:9000"},
            "endpoint_url",
            "Endpoint URL must be an http:// or https:// URL",
        ),
        (
            {"encryption": {"enabled": True, "algorithm": "DES"}},
            "encryption",
            "Encryption algorithm must be 'AES256' or 'aws:kms'",
        ),
    ],
)
def test_s3_field_errors(configuration: dict[str, Any], field: str, message: str) -> None:
    base = {"bucket": "backups", "region": "us-west-2"}
    assert validate_config("s3", {**base, **configuration}, AWS_CREDS) == {field: message}


def test_s3_credentials_errors_are_reported_under_credentials_without_secrets() -> None:
    errors = validate_config(
        "s3",
        {"bucket": "backups", "region": "us-west-2"},
        {"access_key_id": "ASIAIOSFODNN7EXAMPLE", "secret_access_key": "short-secret"},
    )
    assert errors == {
        "credentials": "Temporary (ASIA) access keys need a session_token; Invalid secret access key format"
    }
    assert "short-secret" not in errors["credentials"]
    missing = validate_config("s3", {"bucket": "backups", "region": "us-west-2"}, {})
    assert missing == {"credentials": "Access key ID is required; Secret access key is required"}


def test_s3_with_custom_endpoint_allows_free_form_keys_and_any_region() -> None:
    configuration = {"bucket": "backups", "endpoint_url": "https://s3.example.net", "region": "r1"}
    credentials = {"access_key_id": "backup-user", "secret_access_key": "x"}
    assert validate_config("s3", configuration, credentials) == {}


def test_minio_requires_an_http_endpoint_but_not_a_region() -> None:
    credentials = {"access_key_id": "minioadmin", "secret_access_key": "minioadmin"}
    assert validate_config("minio", {"bucket": "backups"}, credentials) == {"endpoint_url": "Endpoint URL is required"}
    assert validate_config("minio", {"bucket": "backups", "endpoint_url": "http://minio:9000"}, credentials) == {}
    assert validate_config(
        "minio", {"bucket": "backups", "endpoint_url": "http://user:pw@minio:9000"}, credentials
    ) == {"endpoint_url": "Endpoint URL must not contain credentials"}
    assert validate_config("minio", {"bucket": "backups", "endpoint_url": "http://minio:9000"}, {}) == {
        "credentials": "Access key ID is required; Secret access key is required"
    }


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("relative/dir", "Path must be absolute (start with '/')"),
        ("/srv/../etc", "Path must not contain '..'"),
        (None, "Path is required"),
    ],
)
def test_local_path_must_be_absolute_without_dotdot(path: str | None, message: str) -> None:
    assert validate_config("local", {"path": path}, {}) == {"path": message}
    assert validate_config("local", {"path": "/srv/backups"}, {}) == {}


def test_sftp_field_errors(sftp_server: SSHServerInfo) -> None:
    errors = validate_config("sftp", {"host": "bad host!", "port": 70000, "path": "backups"}, {"password": ""})
    assert errors == {
        "host": "Host must be a hostname or an IP address",
        "port": "Port must be an integer between 1 and 65535",
        "path": "Path must be absolute (start with '/')",
        "username": "Username is required",
        "credentials": "Provide a password or a private key",
    }
    assert validate_config(
        "sftp",
        {"host": "backup.example.com", "port": 22, "path": "/srv", "username": "u"},
        {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----"},
    ) == {"credentials": "Private key could not be parsed (unsupported type or wrong passphrase)"}
    valid_key = validate_config(
        "sftp",
        {"host": "10.0.0.5", "path": "/srv", "username": "u", "host_key": sftp_server.host_key},
        {"private_key": sftp_server.private_key},
    )
    assert valid_key == {}


def test_gcs_requires_a_service_account_key() -> None:
    assert validate_config("gcs", {"bucket": "acme-backups"}, {}) == {
        "credentials": "Service account JSON key is required"
    }
    assert validate_config("gcs", {"bucket": "acme-backups"}, {"service_account_json": "{not json"}) == {
        "credentials": "Service account key is not valid JSON"
    }
    assert validate_config(
        "gcs", {"bucket": "Acme Backups"}, {"service_account_json": {"type": "authorized_user"}}
    ) == {
        "bucket": "Bucket name contains invalid characters",
        "credentials": "Service account key must have type 'service_account'",
    }
    assert validate_config("gcs", {"bucket": "acme-backups"}, {"service_account_json": SERVICE_ACCOUNT}) == {}


def test_azure_account_container_and_key_rules() -> None:
    assert validate_config("azure", {"account_name": "Acme_Store", "container": "b--x"}, {}) == {
        "account_name": "Account name must be 3-24 lowercase letters and digits",
        "container": "Container name must be 3-63 lowercase letters, digits and single hyphens",
        "credentials": "Provide an account_key or a connection_string",
    }
    assert (
        validate_config(
            "azure",
            {"account_name": "acmestore", "container": "backups"},
            {"account_key": "c2VjcmV0LWtleQ=="},
        )
        == {}
    )
    assert (
        validate_config(
            "azure",
            {"container": "backups"},
            {
                "connection_string": "DefaultEndpointsProtocol=https;AccountName=acmestore;"
                "AccountKey=c2VjcmV0LWtleQ==;EndpointSuffix=core.windows.net"
            },
        )
        == {}
    )


def test_unknown_type_is_rejected() -> None:
    assert validate_config("ftp", {}, {}) == {
        "type": "Unsupported storage type 'ftp'; expected one of local, s3, minio, sftp, gcs, azure"
    }
    with pytest.raises(InvalidStorageConfig) as info:
        open_backend("ftp", {}, {})
    assert info.value.code == "INVALID_STORAGE_CONFIG"
    assert "type" in info.value.details


def test_open_backend_refuses_an_invalid_configuration_with_details() -> None:
    with pytest.raises(InvalidStorageConfig) as info:
        open_backend("local", {"path": "relative"}, {})
    assert info.value.details == {"path": "Path must be absolute (start with '/')"}


@pytest.mark.parametrize(
    ("type_", "configuration", "credentials"),
    [
        ("gcs", {"bucket": "acme-backups"}, {"service_account_json": SERVICE_ACCOUNT}),
        ("azure", {"account_name": "acmestore", "container": "backups"}, {"account_key": "c2VjcmV0LWtleQ=="}),
    ],
)
def test_gcs_and_azure_open_without_any_io(
    type_: str, configuration: dict[str, Any], credentials: dict[str, Any]
) -> None:
    if type_ == "gcs":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        credentials = {
            "service_account_json": {
                **SERVICE_ACCOUNT,
                "private_key": pem.decode(),
                "token_uri": "https://oauth2.googleapis.com/token",
            }
        }
    backend = open_backend(type_, configuration, credentials)
    assert backend.type == type_ and configuration["bucket" if type_ == "gcs" else "container"] in backend.location


def test_a_gcs_service_account_key_that_cannot_be_loaded_is_an_auth_error() -> None:
    with pytest.raises(StorageAuthError, match="service account key cannot be used") as info:
        open_backend("gcs", {"bucket": "acme-backups"}, {"service_account_json": SERVICE_ACCOUNT})
    assert "MIIB" not in info.value.message


def test_gcs_needs_a_service_account_unless_it_talks_to_an_emulator() -> None:
    assert validate_config("gcs", {"bucket": "acme-backups"}, {}) == {
        "credentials": "Service account JSON key is required"
    }
    assert validate_config("gcs", {"bucket": "acme-backups", "endpoint_url": "http://127.0.0.1:9023"}, {}) == {}
    assert validate_config("gcs", {"bucket": "acme-backups", "endpoint_url": "ftp://x"}, {}) == {
        "endpoint_url": "Endpoint URL must be an http:// or https:// URL"
    }


# -- round trips on every transport ------------------------------------------------------


@pytest.fixture(params=["local", "s3", "sftp", "azure", "gcs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StorageBackend:
    """The same tests run on a local directory, a moto S3 bucket, the SFTP server, an Azurite
    container and a bucket on the GCS emulator."""
    if request.param == "local":
        return open_backend("local", {"path": str(tmp_path / "store")}, {})
    if request.param == "azure":
        container: AzureContainer = request.getfixturevalue("azure_container")
        return open_backend("azure", {**container.configuration, "path_prefix": "ws-1"}, container.credentials)
    if request.param == "gcs":
        gcs: GCSBucket = request.getfixturevalue("gcs_bucket")
        return open_backend("gcs", {**gcs.configuration, "path_prefix": "ws-1/"}, gcs.credentials)
    if request.param == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        return open_backend("minio", {**bucket.configuration, "path_prefix": "ws-1/"}, bucket.credentials)
    server: SSHServerInfo = request.getfixturevalue("sftp_server")
    directory = f"/store-{os.urandom(4).hex()}"
    backend = open_backend(
        "sftp",
        {
            "host": server.host,
            "port": server.port,
            "path": directory,
            "username": server.username,
            "host_key": server.host_key,
        },
        {"password": server.password},
    )
    request.addfinalizer(backend.close)
    return backend


def test_write_read_size_list_delete_round_trip(backend: StorageBackend) -> None:
    payload = os.urandom(300_000)
    with backend.open_writer("daily/db-1.dump") as writer:
        for start in range(0, len(payload), 65_536):
            writer.write(payload[start : start + 65_536])
        writer.commit()
    backend.write_bytes("daily/db-2.dump", b"second")
    backend.write_bytes("weekly/db-1.dump", b"third")

    assert backend.exists("daily/db-1.dump")
    assert backend.size("daily/db-1.dump") == len(payload)
    with backend.open_reader("daily/db-1.dump") as reader:
        assert b"".join(iter_chunks(reader, 100_000)) == payload

    assert [obj.name for obj in backend.list("daily/")] == ["daily/db-1.dump", "daily/db-2.dump"]
    assert [(obj.name, obj.size) for obj in backend.list("weekly")] == [("weekly/db-1.dump", 5)]
    assert len(backend.list()) == 3

    backend.delete("daily/db-1.dump")
    assert not backend.exists("daily/db-1.dump")
    with pytest.raises(StorageNotFound):
        backend.size("daily/db-1.dump")
    with pytest.raises(StorageNotFound):
        backend.open_reader("daily/db-1.dump")
    backend.delete("daily/db-1.dump")  # already gone: not an error
    backend.delete("never/existed.bin")
    assert [obj.name for obj in backend.list()] == ["daily/db-2.dump", "weekly/db-1.dump"]


def test_commit_replaces_an_existing_object(backend: StorageBackend) -> None:
    backend.write_bytes("latest.json", b"old")
    backend.write_bytes("latest.json", b"new contents")
    assert backend.read_bytes("latest.json") == b"new contents"


def test_nothing_is_visible_before_commit_and_abort_leaves_nothing(
    backend: StorageBackend,
) -> None:
    writer = backend.open_writer("run/partial.bin")
    writer.write(os.urandom(10_000))
    assert not backend.exists("run/partial.bin")
    assert backend.list("run/") == []
    writer.abort()
    assert not backend.exists("run/partial.bin")
    assert backend.list() == []


def test_an_exception_in_the_with_block_aborts_the_write(backend: StorageBackend) -> None:
    with pytest.raises(RuntimeError), backend.open_writer("crash.bin") as writer:
        writer.write(b"x" * 1000)
        raise RuntimeError("source died")
    assert not backend.exists("crash.bin")
    assert backend.list() == []


def test_leaving_the_block_without_commit_publishes_nothing(backend: StorageBackend) -> None:
    with backend.open_writer("forgotten.bin") as writer:
        writer.write(b"data")
    assert not backend.exists("forgotten.bin")


def test_probe_round_trip_reports_timed_steps(backend: StorageBackend) -> None:
    result = backend.probe()
    assert result.ok, result.message
    assert [step.name for step in result.steps] == ["connect", "write", "read", "delete"]
    assert all(step.ok and step.duration_ms >= 0 for step in result.steps)
    assert result.error_kind is None
    assert backend.list() == []  # the probe object is gone
    assert result.as_dict()["steps"][1]["name"] == "write"


@pytest.mark.parametrize("name", ["/etc/passwd", "../escape", "a/../../b", "", "a//b", "a\\b"])
def test_names_cannot_escape_the_storage_root(backend: StorageBackend, name: str) -> None:
    with pytest.raises(InvalidObjectName):
        backend.open_writer(name)
    with pytest.raises(InvalidObjectName):
        backend.exists(name)


# -- local specifics ------------------------------------------------------------------


def test_local_writes_via_a_temp_file_in_the_same_directory(tmp_path: Path) -> None:
    backend = open_backend("local", {"path": str(tmp_path)}, {})
    with backend.open_writer("a/b.bin") as writer:
        writer.write(b"abc")
        temps = [p.name for p in (tmp_path / "a").iterdir()]
        assert len(temps) == 1 and temps[0].startswith(".b.bin.") and temps[0].endswith(".part")
        writer.commit()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"abc"


def test_local_free_space_and_no_presigned_url(tmp_path: Path) -> None:
    backend = open_backend("local", {"path": str(tmp_path / "not-yet")}, {})
    assert backend.free_space() > 0
    assert backend.presigned_url("x.bin") is None


def test_local_probe_on_a_read_only_directory_says_permission_denied(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        target = "/proc/backups"  # even root cannot create directories in /proc
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        target = str(tmp_path / "ro" / "store")
    result = open_backend("local", {"path": target}, {}).probe()
    assert not result.ok
    assert result.steps[0].name == "connect" and not result.steps[0].ok
    assert result.message.startswith("connect failed:")
    assert target in result.message or "/proc" in result.message


# -- S3 specifics ---------------------------------------------------------------------------


def test_s3_multipart_upload_of_20_mib_round_trips(s3_bucket: S3Bucket) -> None:
    backend = open_backend("minio", s3_bucket.configuration, s3_bucket.credentials)
    chunk = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    with backend.open_writer("big/artifact.bin") as writer:
        for i in range(20):
            block = bytes([i]) + chunk[1:]
            digest.update(block)
            writer.write(block)
        writer.commit()
    client = s3_bucket.client()
    head = client.head_object(Bucket=s3_bucket.name, Key="big/artifact.bin")
    assert head["ContentLength"] == 20 * 1024 * 1024
    # A multipart ETag ends with "-<parts>": 20 MiB in 8 MiB parts is 3 parts.
    assert head["ETag"].strip('"').endswith(f"-{-(-20 * 1024 * 1024 // PART_SIZE)}")
    read_digest = hashlib.sha256()
    with backend.open_reader("big/artifact.bin") as reader:
        for block in iter_chunks(reader, 1024 * 1024):
            read_digest.update(block)
    assert read_digest.hexdigest() == digest.hexdigest()


def test_s3_aborted_multipart_upload_leaves_no_object_and_no_parts(s3_bucket: S3Bucket) -> None:
    backend = open_backend("minio", s3_bucket.configuration, s3_bucket.credentials)
    client = s3_bucket.client()
    with pytest.raises(RuntimeError), backend.open_writer("big/aborted.bin") as writer:
        writer.write(os.urandom(PART_SIZE + 1024))  # one part already uploaded
        assert len(client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", [])) == 1
        raise RuntimeError("compression failed")
    assert client.list_objects_v2(Bucket=s3_bucket.name).get("KeyCount") == 0
    assert client.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []


def test_s3_path_prefix_is_applied_to_keys(s3_bucket: S3Bucket) -> None:
    backend = open_backend("minio", {**s3_bucket.configuration, "path_prefix": "ws-123/"}, s3_bucket.credentials)
    backend.write_bytes("a.bin", b"1")
    keys = [o["Key"] for o in s3_bucket.client().list_objects_v2(Bucket=s3_bucket.name)["Contents"]]
    assert keys == ["ws-123/a.bin"]
    assert [obj.name for obj in backend.list()] == ["a.bin"]


def test_s3_presigned_url_downloads_the_object(s3_bucket: S3Bucket) -> None:
    backend = open_backend("minio", s3_bucket.configuration, s3_bucket.credentials)
    backend.write_bytes("dl/file.txt", b"download me")
    url = backend.presigned_url("dl/file.txt", expires_in=60)
    assert url is not None and "X-Amz-Signature=" in url
    assert s3_bucket.secret_access_key not in url
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"download me"
    assert backend.free_space() is None


def test_s3_probe_on_a_missing_bucket_says_so(s3_server: str) -> None:
    result = probe(
        "minio",
        {"bucket": "no-such-bucket-here", "endpoint_url": s3_server},
        {"access_key_id": "test", "secret_access_key": "test-secret"},
    )
    assert not result.ok
    assert result.error_kind == "not_found"
    assert result.message == "connect failed: Bucket 'no-such-bucket-here' does not exist"


def test_s3_probe_on_a_closed_port_says_connection_failed(closed_port: int) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    result = probe(
        "minio",
        {"bucket": "backups", "endpoint_url": endpoint},
        {"access_key_id": "test", "secret_access_key": "test-secret"},
        max_attempts=1,
        connect_timeout=2,
    )
    assert not result.ok
    assert result.error_kind == "unavailable"
    assert result.message == f"connect failed: Could not connect to {endpoint} (connection refused?)"


def test_s3_probe_with_wrong_credentials_says_access_denied(s3_auth: S3Bucket) -> None:
    good = probe("minio", s3_auth.configuration, s3_auth.credentials)
    assert good.ok, good.message

    wrong_secret = "wrong-secret-value-123"
    result = probe(
        "minio",
        s3_auth.configuration,
        {"access_key_id": s3_auth.access_key_id, "secret_access_key": wrong_secret},
    )
    assert not result.ok and result.error_kind == "auth_failed"
    assert result.message == "connect failed: Access denied: the secret access key is wrong"
    assert wrong_secret not in result.message

    unknown = probe(
        "minio",
        s3_auth.configuration,
        {"access_key_id": "AKIAUNKNOWNKEY000000", "secret_access_key": wrong_secret},
    )
    assert unknown.error_kind == "auth_failed"
    assert "access key ID is not recognised" in unknown.message


def test_s3_operations_raise_auth_errors_with_wrong_keys(s3_auth: S3Bucket) -> None:
    backend = open_backend(
        "minio",
        s3_auth.configuration,
        {"access_key_id": s3_auth.access_key_id, "secret_access_key": "nope-nope-nope"},
    )
    with pytest.raises(StorageAuthError):
        backend.write_bytes("x.bin", b"x")


# -- SFTP specifics ----------------------------------------------------------------------------


def _sftp_config(server: SSHServerInfo, path: str = "/backups", **extra: Any) -> dict[str, Any]:
    return {
        "host": server.host,
        "port": server.port,
        "path": path,
        "username": server.username,
        **extra,
    }


def test_sftp_streams_a_large_file_with_key_auth(sftp_server: SSHServerInfo) -> None:
    backend = open_backend("sftp", _sftp_config(sftp_server, "/keyed"), {"private_key": sftp_server.rsa_private_key})
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with backend, backend.open_writer("nested/dir/big.bin") as writer:
        for start in range(0, len(payload), 1024 * 1024):
            writer.write(payload[start : start + 1024 * 1024])
        writer.commit()
    assert (sftp_server.root / "keyed" / "nested" / "dir" / "big.bin").read_bytes() == payload
    with backend, backend.open_reader("nested/dir/big.bin") as reader:
        assert hashlib.sha256(reader.read()).digest() == hashlib.sha256(payload).digest()


def test_sftp_free_space_comes_from_statvfs(sftp_server: SSHServerInfo) -> None:
    backend = open_backend("sftp", _sftp_config(sftp_server), {"password": sftp_server.password})
    with backend:
        free = backend.free_space()
    assert free is not None
    # Same filesystem as the server's root, give or take what others wrote meanwhile.
    assert abs(free - shutil.disk_usage(sftp_server.root).free) < 512 * 1024 * 1024
    assert backend.presigned_url("x") is None


def test_sftp_probe_with_a_wrong_password_says_authentication_failed(
    sftp_server: SSHServerInfo,
) -> None:
    wrong = "definitely-not-the-password"
    result = probe("sftp", _sftp_config(sftp_server), {"password": wrong})
    assert not result.ok and result.error_kind == "auth_failed"
    assert result.message == f"connect failed: Authentication failed for user '{sftp_server.username}'"
    assert wrong not in result.message


def test_sftp_probe_on_a_closed_port_says_connection_refused(sftp_server: SSHServerInfo, closed_port: int) -> None:
    config = {**_sftp_config(sftp_server), "port": closed_port}
    result = probe("sftp", config, {"password": sftp_server.password})
    assert not result.ok and result.error_kind == "unavailable"
    assert result.message == f"connect failed: Connection refused by 127.0.0.1:{closed_port}"


def test_sftp_refuses_a_server_whose_host_key_does_not_match(
    sftp_server: SSHServerInfo,
) -> None:
    other_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmnWbXa0iEp6Dst0Z3p2vYbBbW2r0wC0Sf2CxU2Oq6L"
    config = _sftp_config(sftp_server, host_key=other_key)
    result = probe("sftp", config, {"password": sftp_server.password})
    assert not result.ok
    assert "does not match the pinned key" in result.message


def test_s3_server_side_encryption_is_requested_for_small_and_multipart_objects(
    s3_bucket: S3Bucket,
) -> None:
    configuration = {**s3_bucket.configuration, "encryption": {"enabled": True}}
    backend = open_backend("minio", configuration, s3_bucket.credentials)
    backend.write_bytes("small.bin", b"tiny")
    with backend.open_writer("large.bin") as writer:
        writer.write(os.urandom(PART_SIZE + 10))
        writer.commit()
    client = s3_bucket.client()
    for key in ("small.bin", "large.bin"):
        head = client.head_object(Bucket=s3_bucket.name, Key=key)
        assert head.get("ServerSideEncryption") == "AES256", key
