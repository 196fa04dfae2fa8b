"""api-layer.md "Authentication" on the jobs API's own listener: the platform's login,
refresh and logout, answered in this API's envelope (``{success, message, data}``)."""

from __future__ import annotations

from backupplatform.facades.platform import auth

from .conventions import JOBS


class LoginView(auth.LoginView):
    facade = JOBS
    success_message = "Logged in"


class RefreshView(auth.RefreshView):
    facade = JOBS
    success_message = "Token refreshed"


class LogoutView(auth.LogoutView):
    facade = JOBS
    success_message = "Logged out"
