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


def network_errors(type: str, configuration: Mapping[str, Any]) -> dict[str, str]:
    errors: dict[str, str] = {}
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
