"""The network policy (``backupplatform.netpolicy``) applied to a storage's configuration:
the endpoints and hosts a storage connects to. Checked when a storage is saved and every
time a backend is opened, right before it connects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backupplatform import netpolicy

# Configuration keys that name where a backend connects, by provider.
URL_KEYS = ("endpoint_url", "account_url", "api_endpoint", "endpoint")
HOST_KEYS = ("host",)


def _azure_endpoints(configuration: Mapping[str, Any], credentials: Mapping[str, Any]) -> dict[str, str]:
    """Where an Azure storage connects: a connection string's ``BlobEndpoint``, else
    ``<account>.blob.<endpoint_suffix>``."""
    found: dict[str, str] = {}
    raw = credentials.get("connection_string")
    fields = dict(p.split("=", 1) for p in raw.split(";") if "=" in p) if isinstance(raw, str) else {}
    if fields.get("BlobEndpoint"):
        found["credentials"] = fields["BlobEndpoint"]
    account = configuration.get("account_name") or fields.get("AccountName")
    suffix = configuration.get("endpoint_suffix") or fields.get("EndpointSuffix") or "core.windows.net"
    if account and "credentials" not in found and isinstance(account, str) and isinstance(suffix, str):
        found["endpoint_suffix"] = f"https://{account}.blob.{suffix}"
    return found


def network_errors(
    type: str, configuration: Mapping[str, Any], credentials: Mapping[str, Any] | None = None
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if type == "azure":
        for key, url in _azure_endpoints(configuration, credentials or {}).items():
            if reason := netpolicy.url_refusal(url):
                errors[key] = f"Not allowed as a target: {reason}."
    for key in URL_KEYS:
        value = configuration.get(key)
        if isinstance(value, str) and value and (reason := netpolicy.url_refusal(value)):
            errors[key] = f"Not allowed as a target: {reason}."
    for key in HOST_KEYS:
        value = configuration.get(key)
        if isinstance(value, str) and value:
            port = configuration.get("port") or 22
            if reason := netpolicy.host_refusal(value, port if isinstance(port, int) else None):
                errors[key] = f"Not allowed as a target: {reason}."
    return errors
