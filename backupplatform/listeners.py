"""Two APIs claim ``/api/v1/backups``: db-backup-platform.md's backups (on ``localhost:8000``)
and api-layer.md's backup jobs (on ``localhost:5000``). Each keeps its documented paths: a
request that reaches the jobs API's listener (its port, ``JOBS_API_PORTS``, or its host name,
``JOBS_API_HOSTS``) is routed by the jobs API's own URLconf (``backupplatform.urls_jobs``);
everything else by the main one, where the jobs API also answers at ``/api/v1/jobs``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port

JOBS_URLCONF = "backupplatform.urls_jobs"


def is_jobs_listener(request: HttpRequest) -> bool:
    """Whether ``request`` came to the jobs API's listener: the port the server accepted it on
    (not the ``Host`` header's, which a client chooses), or a host name the operator gave it."""
    ports = {int(p) for p in settings.JOBS_API_PORTS}
    if ports and request.META.get("SERVER_PORT", "").isdigit() and int(request.META["SERVER_PORT"]) in ports:
        return True
    hosts = {h.lower() for h in settings.JOBS_API_HOSTS}
    if hosts:
        host, _port = split_domain_port(request.get_host())
        return host in hosts
    return False


class JobsListenerMiddleware:
    """Route the jobs API's listener by its URLconf (``request.urlconf``)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        if is_jobs_listener(request):
            request.urlconf = JOBS_URLCONF
        return self.get_response(request)
