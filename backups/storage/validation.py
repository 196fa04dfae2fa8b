"""Field-level validation of storage configurations.

``validate_config()`` returns ``{field: message}``, empty when valid, in the
shape of workspace-backup-api.md, "Error Responses" (``INVALID_STORAGE_CONFIG``
details: ``{"bucket": "Bucket name contains invalid characters",
"credentials": "Invalid access key format"}``). Every credential problem is
reported under the single ``credentials`` key, as the seed does. Messages never
echo a secret value.

Configuration keys per type (credentials in brackets):

- ``local``: ``path`` (absolute directory).
- ``s3``: ``bucket``, ``region``, optional ``endpoint_url`` (S3-compatible
  services), ``path_prefix``, ``encryption`` {``enabled``, ``algorithm``
  AES256|aws:kms, ``kms_key_id``: with a key, objects are encrypted with that KMS key
  (SSE-KMS; KMS keys are AES-256, so ``AES256`` + a key, as workspace-backup-api.md
  writes it, means the same)}, ``addressing_style`` [``access_key_id``,
  ``secret_access_key``, optional ``session_token``].
- ``minio``: as ``s3`` but ``endpoint_url`` is required and ``region`` optional.
- ``sftp``: ``host``, ``port`` (default 22), ``path`` (absolute), ``username``
  (here or in credentials), optional ``host_key`` ("ssh-ed25519 AAAA...")
  [``password`` and/or ``private_key`` (+ ``passphrase``)].
- ``gcs``: ``bucket``, optional ``path_prefix``, ``project_id``, ``endpoint_url``
  (a GCS-compatible server or emulator) [``service_account_json``: the key file, as a
  JSON string or object; optional with an ``endpoint_url``: then requests are anonymous].
- ``azure``: ``account_name``, ``container``, optional ``path_prefix``
  [``account_key`` or ``connection_string``].
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from backups.connectivity import InvalidPrivateKey, load_private_key

STORAGE_TYPES: tuple[str, ...] = ("local", "s3", "minio", "sftp", "gcs", "azure")

_BUCKET_CHARS = re.compile(r"^[a-z0-9.-]+$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
_CUSTOM_REGION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_AWS_ACCESS_KEY = re.compile(r"^(AKIA|ASIA)[A-Z0-9]{16}$")
_AWS_SECRET_KEY = re.compile(r"^[A-Za-z0-9/+=]{40}$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)"
    r"(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$"
)
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]*[a-z0-9]$")
_AZURE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_AZURE_CONTAINER = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$")
_SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)

Errors = dict[str, str]


def validate_config(
    type: str,
    configuration: Mapping[str, Any] | None,
    credentials: Mapping[str, Any] | None,
) -> dict[str, str]:
    """Validate a storage configuration; return field-level errors (empty if valid)."""
    if type not in STORAGE_TYPES:
        return {"type": f"Unsupported storage type {type!r}; expected one of {', '.join(STORAGE_TYPES)}"}
    errors: Errors = {}
    if configuration is None:
        configuration = {}
    if credentials is None:
        credentials = {}
    if not isinstance(configuration, Mapping):
        return {"configuration": "Configuration must be an object"}
    if not isinstance(credentials, Mapping):
        return {"credentials": "Credentials must be an object"}
    _VALIDATORS[type](configuration, credentials, errors)
    return errors


# -- shared field checks -------------------------------------------------------


def _text(value: Any) -> str | None:
    """``value`` stripped if it is a non-empty string, else ``None``."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _add_credential_error(errors: Errors, message: str) -> None:
    if "credentials" in errors:
        errors["credentials"] += f"; {message}"
    else:
        errors["credentials"] = message


def _check_absolute_path(value: Any, errors: Errors, field: str = "path") -> None:
    path = _text(value)
    if path is None:
        errors[field] = "Path is required"
    elif not path.startswith("/"):
        errors[field] = "Path must be absolute (start with '/')"
    elif ".." in path.split("/"):
        errors[field] = "Path must not contain '..'"
    elif "\x00" in path:
        errors[field] = "Path contains invalid characters"


def _check_path_prefix(value: Any, errors: Errors) -> None:
    if value in (None, ""):
        return
    if not isinstance(value, str):
        errors["path_prefix"] = "Path prefix must be a string"
    elif value.startswith("/"):
        errors["path_prefix"] = "Path prefix must be relative (no leading '/')"
    elif ".." in value.split("/"):
        errors["path_prefix"] = "Path prefix must not contain '..'"
    elif "\\" in value or "\x00" in value or "//" in value:
        errors["path_prefix"] = "Path prefix contains invalid characters"
    elif len(value) > 512:
        errors["path_prefix"] = "Path prefix must be at most 512 characters long"


def bucket_name_error(name: Any) -> str | None:
    """S3 bucket naming rules (AWS "General purpose bucket naming rules")."""
    if not isinstance(name, str) or not name:
        return "Bucket name is required"
    if not 3 <= len(name) <= 63:
        return "Bucket name must be between 3 and 63 characters long"
    if not _BUCKET_CHARS.match(name):
        return "Bucket name contains invalid characters"
    if not (name[0].isalnum() and name[-1].isalnum()):
        return "Bucket name must begin and end with a letter or number"
    if ".." in name:
        return "Bucket name must not contain two adjacent periods"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "Bucket name must not be formatted as an IP address"
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return "Bucket name uses a reserved prefix or suffix"
    return None


def endpoint_url_error(value: Any) -> str | None:
    """An ``http(s)://host[:port][/path]`` URL without credentials, query or fragment."""
    url = _text(value)
    if url is None:
        return "Endpoint URL is required"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "Endpoint URL is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "Endpoint URL must be an http:// or https:// URL"
    if parts.username or parts.password:
        return "Endpoint URL must not contain credentials"
    if parts.query or parts.fragment:
        return "Endpoint URL must not contain a query or fragment"
    if port == 0:
        return "Endpoint URL port must be between 1 and 65535"
    return None


def host_error(value: Any) -> str | None:
    """A DNS name or an IP address."""
    host = _text(value)
    if host is None:
        return "Host is required"
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        if not _HOSTNAME.match(host):
            return "Host must be a hostname or an IP address"
    return None


def port_error(value: Any) -> str | None:
    """An integer (or digit string) in 1..65535."""
    if isinstance(value, bool):
        return "Port must be an integer between 1 and 65535"
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        return "Port must be an integer between 1 and 65535"
    return None


# -- per type --------------------------------------------------------------------


def _validate_local(config: Mapping[str, Any], creds: Mapping[str, Any], errors: Errors) -> None:
    _check_absolute_path(config.get("path"), errors)


def _validate_s3_like(config: Mapping[str, Any], creds: Mapping[str, Any], errors: Errors, *, minio: bool) -> None:
    if (error := bucket_name_error(config.get("bucket"))) is not None:
        errors["bucket"] = error

    endpoint = config.get("endpoint_url")
    custom_endpoint = minio or endpoint not in (None, "")
    if custom_endpoint and (error := endpoint_url_error(endpoint)) is not None:
        errors["endpoint_url"] = error

    region = config.get("region")
    if region in (None, ""):
        if not custom_endpoint:
            errors["region"] = "Region is required"
    elif not isinstance(region, str):
        errors["region"] = "Region must be a string such as 'us-west-2'"
    elif custom_endpoint and not _CUSTOM_REGION.match(region):
        errors["region"] = "Region contains invalid characters"
    elif not custom_endpoint and not _AWS_REGION.match(region):
        errors["region"] = "Invalid region format (expected e.g. 'us-west-2')"

    _check_path_prefix(config.get("path_prefix"), errors)

    style = config.get("addressing_style")
    if style not in (None, "", "auto", "path", "virtual"):
        errors["addressing_style"] = "Addressing style must be 'auto', 'path' or 'virtual'"

    encryption = config.get("encryption")
    if encryption not in (None, {}):
        if not isinstance(encryption, Mapping):
            errors["encryption"] = "Encryption must be an object"
        elif encryption.get("enabled", True):
            algorithm = encryption.get("algorithm", "AES256")
            if algorithm not in ("AES256", "aws:kms"):
                errors["encryption"] = "Encryption algorithm must be 'AES256' or 'aws:kms'"
            elif encryption.get("kms_key_id") is not None and not _text(encryption.get("kms_key_id")):
                errors["encryption"] = "kms_key_id must be a non-empty string"

    access_key = creds.get("access_key_id")
    secret_key = creds.get("secret_access_key")
    if not _text(access_key):
        _add_credential_error(errors, "Access key ID is required")
    elif not custom_endpoint and not _AWS_ACCESS_KEY.match(access_key):
        _add_credential_error(errors, "Invalid access key format")
    elif not custom_endpoint and access_key.startswith("ASIA") and not _text(creds.get("session_token")):
        _add_credential_error(errors, "Temporary (ASIA) access keys need a session_token")
    if not _text(secret_key):
        _add_credential_error(errors, "Secret access key is required")
    elif not custom_endpoint and not _AWS_SECRET_KEY.match(secret_key):
        _add_credential_error(errors, "Invalid secret access key format")


def _validate_s3(config: Mapping[str, Any], creds: Mapping[str, Any], errors: Errors) -> None:
    _validate_s3_like(config, creds, errors, minio=False)


def _validate_minio(config: Mapping[str, Any], creds: Mapping[str, Any], errors: Errors) -> None:
    _validate_s3_like(config, creds, errors, minio=True)


def _validate_sftp(config: Mapping[str, Any], creds: Mapping[str, Any], errors: Errors) -> None:
    if (error := host_error(config.get("host"))) is not None:
        errors["host"] = error
    if config.get("port") not in (None, "") and (error := port_error(config["port"])):
        errors["port"] = error
    _check_absolute_path(config.get("path"), errors)

    host_key = config.get("host_key")
    if host_key not in (None, ""):
        fields = host_key.split() if isinstance(host_key, str) else []
        if len(fields) < 2 or fields[0] not in _SSH_KEY_TYPES or not _is_base64(fields[1]):
            errors["host_key"] = "Host key must be a public key line such as 'ssh-ed25519 AAAA...'"

    if not _text(config.get("username")) and not _text(creds.get("username")):
        errors["username"] = "Username is required"
    password = creds.get("password")
    private_key = creds.get("private_key")
    if not _text(password) and not _text(private_key):
        _add_credential_error(errors, "Provide a password or a private key")
    elif _text(private_key):
        # Imported here: paramiko is heavy and only SFTP needs it.

        try:
            load_private_key(private_key, creds.get("passphrase") or None)
        except InvalidPrivateKey as exc:
            _add_credential_error(errors, str(exc))


def _validate_gcs(config: Mapping[str, Any], creds: Mapping[str, Any], errors: Errors) -> None:
    bucket = config.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        errors["bucket"] = "Bucket name is required"
    elif not _GCS_BUCKET.match(bucket):
        errors["bucket"] = "Bucket name contains invalid characters"
    elif len(bucket) > (222 if "." in bucket else 63) or any(not 1 <= len(part) <= 63 for part in bucket.split(".")):
        errors["bucket"] = "Bucket name is too long"
    elif len(bucket) < 3:
        errors["bucket"] = "Bucket name must be at least 3 characters long"
    elif bucket.startswith("goog") or "google" in bucket or "g00gle" in bucket:
        errors["bucket"] = "Bucket name must not start with 'goog' or contain 'google'"
    _check_path_prefix(config.get("path_prefix"), errors)
    endpoint = config.get("endpoint_url")
    if endpoint not in (None, "") and (error := endpoint_url_error(endpoint)) is not None:
        errors["endpoint_url"] = error

    raw = creds.get("service_account_json")
    if raw in (None, ""):
        if endpoint in (None, ""):
            _add_credential_error(errors, "Service account JSON key is required")
        return
    info: Any = raw
    if isinstance(raw, str):
        try:
            info = json.loads(raw)
        except ValueError:
            _add_credential_error(errors, "Service account key is not valid JSON")
            return
    if not isinstance(info, Mapping) or info.get("type") != "service_account":
        _add_credential_error(errors, "Service account key must have type 'service_account'")
        return
    missing = [key for key in ("client_email", "private_key", "project_id") if not info.get(key)]
    if missing:
        _add_credential_error(errors, f"Service account key lacks {', '.join(missing)}")
    elif "PRIVATE KEY" not in str(info.get("private_key")):
        _add_credential_error(errors, "Service account private_key is not a PEM key")


def _validate_azure(config: Mapping[str, Any], creds: Mapping[str, Any], errors: Errors) -> None:
    connection_string = _text(creds.get("connection_string"))
    account_key = _text(creds.get("account_key"))
    account = config.get("account_name")
    if account in (None, ""):
        if not connection_string:
            errors["account_name"] = "Account name is required"
    elif not isinstance(account, str) or not _AZURE_ACCOUNT.match(account):
        errors["account_name"] = "Account name must be 3-24 lowercase letters and digits"
    container = config.get("container")
    if not isinstance(container, str) or not container:
        errors["container"] = "Container name is required"
    elif not _AZURE_CONTAINER.match(container):
        errors["container"] = "Container name must be 3-63 lowercase letters, digits and single hyphens"
    _check_path_prefix(config.get("path_prefix"), errors)

    if connection_string:
        fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
        if not ("AccountName" in fields and ("AccountKey" in fields or "SharedAccessSignature" in fields)) and not (
            "BlobEndpoint" in fields and "SharedAccessSignature" in fields
        ):
            _add_credential_error(
                errors,
                "Connection string needs AccountName and AccountKey (or a SharedAccessSignature)",
            )
    elif account_key:
        if not _is_base64(account_key):
            _add_credential_error(errors, "Account key must be base64")
    else:
        _add_credential_error(errors, "Provide an account_key or a connection_string")


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_VALIDATORS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any], Errors], None]] = {
    "local": _validate_local,
    "s3": _validate_s3,
    "minio": _validate_minio,
    "sftp": _validate_sftp,
    "gcs": _validate_gcs,
    "azure": _validate_azure,
}
