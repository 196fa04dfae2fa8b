"""Writes of the backups domain (CONVENTIONS.md "Services and selectors")."""

# Servers, applications and storages (what to protect, where to keep it).
from .applications import (
    application_create,
    application_delete,
    application_get_default,
    application_update,
)
from .servers import (
    server_check_all_health,
    server_check_health,
    server_create,
    server_delete,
    server_list_databases,
    server_test_connection,
    server_update,
)
from .storages import (
    InvalidStorageConfiguration,
    UnsupportedProvider,
    storage_config_from_connection_string,
    storage_create,
    storage_delete,
    storage_free_space,
    storage_probe,
    storage_probe_config,
    storage_public_credentials,
    storage_update,
)

__all__ = [
    "InvalidStorageConfiguration",
    "UnsupportedProvider",
    "application_create",
    "application_delete",
    "application_get_default",
    "application_update",
    "server_check_all_health",
    "server_check_health",
    "server_create",
    "server_delete",
    "server_list_databases",
    "server_test_connection",
    "server_update",
    "storage_config_from_connection_string",
    "storage_create",
    "storage_delete",
    "storage_free_space",
    "storage_probe",
    "storage_probe_config",
    "storage_public_credentials",
    "storage_update",
]
