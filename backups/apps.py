from __future__ import annotations

from django.apps import AppConfig


class BackupsConfig(AppConfig):
    name = "backups"

    def ready(self) -> None:
        from celery.signals import worker_init

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            notices,
        )

        notices.register()  # what notifications say about backups, servers, restores...

        worker_init.connect(_refuse_worker_without_keys, weak=False, dispatch_uid="backups-keys-at-start")


def _refuse_worker_without_keys(**kwargs) -> None:
    """A worker that cannot open the tenants' keys would fail every backup, restore and
    verification with "wrapped key failed authentication": it does not start at all.
    (Celery logs and ignores exceptions of signal handlers; SystemExit stops the worker.)"""
    import logging

    from .keys import MasterKeyError, check_keys_at_start

    try:
        check_keys_at_start()
    except MasterKeyError as exc:
        logging.getLogger(__name__).critical("%s", exc)
        raise SystemExit(f"Refusing to start the worker: {exc}") from None
