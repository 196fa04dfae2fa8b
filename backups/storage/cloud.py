"""Google Cloud Storage and Azure Blob Storage.

Their client libraries (``google-cloud-storage``, ``azure-storage-blob``) are
not dependencies yet, so these types validate (see ``validation.py``) but
cannot be opened: :func:`open_gcs` / :func:`open_azure` raise
:class:`StorageNotInstalled` naming the missing package. When the packages are
added, implement them here on django-storages' ``GoogleCloudStorage`` /
``AzureStorage`` (both stream uploads from a file object).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .base import StorageBackend
from .errors import StorageNotInstalled

#: What requirements/base.txt would need for each type.
REQUIRED_PACKAGES = {
    "gcs": ("google.cloud.storage", "google-cloud-storage==3.17.1"),
    "azure": ("azure.storage.blob", "azure-storage-blob==12.31.1"),
}


def is_available(storage_type: str) -> bool:
    """True if the client library of ``storage_type`` can be imported."""
    module, _ = REQUIRED_PACKAGES[storage_type]
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _unavailable(storage_type: str) -> StorageNotInstalled:
    _module, requirement = REQUIRED_PACKAGES[storage_type]
    package = requirement.split("==", 1)[0]
    if not is_available(storage_type):
        return StorageNotInstalled(
            f"{package} is not installed; {storage_type} storage needs {requirement}",
            details={"package": requirement},
        )
    return StorageNotInstalled(
        f"{storage_type} storage is not implemented yet ({package} is installed)",
        details={"package": requirement},
    )


def open_gcs(configuration: dict[str, Any], credentials: dict[str, Any]) -> StorageBackend:
    """Google Cloud Storage: not available in this build."""
    raise _unavailable("gcs")


def open_azure(configuration: dict[str, Any], credentials: dict[str, Any]) -> StorageBackend:
    """Azure Blob Storage: not available in this build."""
    raise _unavailable("azure")
