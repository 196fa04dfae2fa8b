"""Signing in to the admin: a password, then (when required) a TOTP code, or single sign-on.

The account is only logged in once every step has passed: after the password, a user who
needs a second factor is kept as *pending* in the session (for five minutes) and asked for a
code from their authenticator app, or to enrol one first when a tenant they belong to
requires it and they have none. So a half-finished sign-in never opens a session that the
API's session authentication or the admin's WebSocket would accept.

A second factor is required of users who enrolled one and of active members of a tenant with
``require_two_factor``. Sessions opened by single sign-on count as verified by the identity
provider (its own MFA policy applies). A session that is not verified while the user now
needs a second factor (the tenant just switched it on) is logged out at its next request.
API keys and JWTs are not sessions: automation keeps working.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import segno
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model, login, logout
from django.contrib.auth.views import LoginView, redirect_to_login
from django.core.cache import cache
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from . import services

PENDING = "signin_pending"
PENDING_SECONDS = 300
SETUP_DEVICE = "signin_setup_device"
OIDC_BACKEND = "tenants.oidc.TenantOIDCBackend"


def _admin_context(request) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "sso_enabled": settings.OIDC_ENABLED,
        "sso_name": settings.OIDC_PROVIDER_NAME,
    }


def _failure_keys(request) -> tuple[str, str]:
    address = request.META.get("REMOTE_ADDR") or "-"
    username = (request.POST.get("username") or "").strip().lower()[:150]
    return f"signin-failures:{address}:{username}", f"signin-failures:{address}"


def _signin_locked(request) -> bool:
    """Whether this address has had too many wrong passwords, for this user name or at all."""
    per_user, per_address = _failure_keys(request)
    counts = cache.get_many([per_user, per_address])
    return (
        counts.get(per_user, 0) >= settings.SIGNIN_MAX_FAILURES
        or counts.get(per_address, 0) >= settings.SIGNIN_MAX_FAILURES_PER_ADDRESS
    )


def _count_failure(request) -> None:
    for key in _failure_keys(request):
        cache.add(key, 0, timeout=settings.SIGNIN_FAILURE_WINDOW)  # the window starts at the first failure
        try:
            cache.incr(key)
        except ValueError:  # expired between the two calls
            cache.set(key, 1, timeout=settings.SIGNIN_FAILURE_WINDOW)


class SignInView(LoginView):
    """``/admin/login/``: the admin's password form, with the single sign-on button. Wrong
    passwords are counted per address and user name; past ``SIGNIN_MAX_FAILURES`` the form
    refuses every try (429) until ``SIGNIN_FAILURE_WINDOW`` seconds after the first."""

    form_class = AdminAuthenticationForm
    template_name = "signin/login.html"
    redirect_authenticated_user = False

    def post(self, request, *args, **kwargs):
        if _signin_locked(request):
            minutes = -(-settings.SIGNIN_FAILURE_WINDOW // 60)
            context = self.get_context_data(
                form=self.form_class(request),
                locked=f"Too many failed sign-ins from here. Try again in up to {minutes} minutes.",
            )
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        _count_failure(self.request)
        return super().form_invalid(form)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            _admin_context(self.request),
            title="Log in",
            app_path=self.request.get_full_path(),
            sso_failed=self.request.GET.get("sso") == "failed",
        )
        return context

    def form_valid(self, form):
        user = form.get_user()
        if not services.two_factor_required(user):
            return super().form_valid(form)
        self.request.session.cycle_key()
        self.request.session[PENDING] = {
            "user": user.pk,
            "backend": user.backend,
            "at": time.time(),
            "next": self.get_success_url(),
        }
        return redirect("signin-two-factor")


def _pending_user(request):
    pending = request.session.get(PENDING)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        request.session.pop(PENDING, None)
        return None, None
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True, is_staff=True).first()
    return user, pending


@method_decorator([sensitive_post_parameters("token"), csrf_protect], name="dispatch")
class TwoFactorView(View):
    """``/admin/two-factor/``: the code from the authenticator app, or enrolling one."""

    template_name = "signin/two_factor.html"

    def get(self, request):
        user, pending = _pending_user(request)
        if user is None:
            return redirect_to_login(settings.LOGIN_REDIRECT_URL)
        return self._page(request, user, pending)

    def post(self, request):
        user, pending = _pending_user(request)
        if user is None:
            return redirect_to_login(settings.LOGIN_REDIRECT_URL)
        token = request.POST.get("token", "")
        if pending.get("device"):
            device = services.totp_enrolment_confirm(user=user, device_id=pending["device"], token=token)
        else:
            device = services.totp_verify(user=user, token=token)
        if device is None:
            return self._page(
                request,
                user,
                pending,
                error="That code is not valid. Enter the current 6-digit code from your authenticator app.",
            )
        next_url = pending.get("next") or settings.LOGIN_REDIRECT_URL
        request.session.pop(PENDING, None)
        login(request, user, backend=pending["backend"])
        otp_login(request, device)
        return redirect(next_url)

    def _page(self, request, user, pending, error: str = ""):
        context = {
            **_admin_context(request),
            "title": "Two-factor authentication",
            "error": error,
            "username": user.get_username(),
        }
        if not pending.get("device") and not services.two_factor_enrolled(user):
            device = services.totp_enrolment_start(user=user)
            pending["device"] = device.pk
            request.session[PENDING] = pending
        if pending.get("device"):
            from django_otp.plugins.otp_totp.models import TOTPDevice

            device = TOTPDevice.objects.filter(pk=pending["device"], user=user).first()
            if device is None:  # reset meanwhile: start again
                request.session.pop(PENDING, None)
                return redirect_to_login(settings.LOGIN_REDIRECT_URL)
            uri = device.config_url
            context.update(
                enrol=True,
                otpauth_uri=uri,
                qr_svg=segno.make(uri, error="m").svg_inline(scale=4),
                secret=base64.b32encode(device.bin_key).decode(),
                tenants=[t.name for t in services.two_factor_tenants(user)],
            )
        response = render(request, self.template_name, context)
        add_never_cache_headers(response)  # the enrolment page shows the seed once: never cached
        return response


@method_decorator([sensitive_post_parameters("token"), csrf_protect], name="dispatch")
class TwoFactorSetupView(View):
    """``/admin/two-factor/setup/``: a signed-in user adds an authenticator of their own
    accord (from then on every sign-in asks for its code)."""

    template_name = "signin/two_factor.html"

    def dispatch(self, request, *args, **kwargs):
        if not (request.user.is_authenticated and request.user.is_active and request.user.is_staff):
            return redirect_to_login(request.get_full_path())
        return super().dispatch(request, *args, **kwargs)

    def get(self, request):
        return self._page(request)

    def post(self, request):
        device_id = request.session.get(SETUP_DEVICE)
        device = services.totp_enrolment_confirm(
            user=request.user, device_id=device_id or 0, token=request.POST.get("token", "")
        )
        if device is None:
            return self._page(
                request, error="That code is not valid. Enter the current 6-digit code from your authenticator app."
            )
        request.session.pop(SETUP_DEVICE, None)
        otp_login(request, device)
        return redirect(settings.LOGIN_REDIRECT_URL)

    def _page(self, request, error: str = ""):
        user = request.user
        context = {
            **_admin_context(request),
            "title": "Two-factor authentication",
            "error": error,
            "username": user.get_username(),
        }
        if services.two_factor_enrolled(user):
            context["already_enrolled"] = True
        else:
            from django_otp.plugins.otp_totp.models import TOTPDevice

            device = TOTPDevice.objects.filter(
                pk=request.session.get(SETUP_DEVICE) or 0, user=user, confirmed=False
            ).first()
            if device is None:
                device = services.totp_enrolment_start(user=user)
                request.session[SETUP_DEVICE] = device.pk
            uri = device.config_url
            context.update(
                enrol=True,
                otpauth_uri=uri,
                qr_svg=segno.make(uri, error="m").svg_inline(scale=4),
                secret=base64.b32encode(device.bin_key).decode(),
            )
        response = render(request, self.template_name, context)
        add_never_cache_headers(response)
        return response


class TwoFactorSessionMiddleware:
    """Logs out a session that lacks the second factor its user now needs (after Django's
    and django-otp's middleware)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if (
            user is not None
            and user.is_authenticated
            and not user.is_verified()
            and request.session.get(BACKEND_SESSION_KEY) != OIDC_BACKEND
            and services.two_factor_required(user)
        ):
            logout(request)
            if request.path.startswith("/admin/"):
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)
