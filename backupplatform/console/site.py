"""The admin site of the console: the overview is its index, the model list moves to
``models/``, internal tables are grouped away, and the console's own pages are routed here."""

from __future__ import annotations

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path

from . import views

#: Apps whose tables are the platform's plumbing, not something an operator configures.
INTERNAL_APPS = ("django_celery_beat", "token_blacklist", "auth")
#: Operators' sections first, in this order.
SECTION_ORDER = ("backups", "schedules", "tenants", "audit", "acronis")


class ConsoleAdminSite(admin.AdminSite):
    site_header = "Backup platform"
    site_title = "Backup console"
    index_title = "Overview"
    site_url = None  # the console is the site: no "View site" link
    # The console's top bar and "All settings" lead everywhere; lists get the full width.
    enable_nav_sidebar = False

    def get_urls(self):

        console = [
            path("models/", self.admin_view(self.models_index), name="models"),
            path(
                "console/servers/<int:pk>/backup/", self.admin_view(views.server_backup), name="console_server_backup"
            ),
            path(
                "console/applications/<int:pk>/backup/",
                self.admin_view(views.application_backup),
                name="console_application_backup",
            ),
            path("console/backups/<int:pk>/restore/", self.admin_view(views.restore_wizard), name="console_restore"),
            path("console/backups/<int:pk>/verify/", self.admin_view(views.verify), name="console_verify"),
            path("console/backups/<int:pk>/download/", self.admin_view(views.download), name="console_download"),
            path("console/jobs/<int:pk>/run/", self.admin_view(views.job_run_now), name="console_job_run"),
            path("console/schedule-preview/", self.admin_view(views.schedule_preview), name="console_schedule_preview"),
            path(
                "console/operations/<str:public_id>/", self.admin_view(views.operation_page), name="console_operation"
            ),
        ]
        return console + super().get_urls()

    def index(self, request, extra_context=None):

        return views.overview_page(request, self)

    def models_index(self, request):
        """The stock model list (what the admin's index was), grouped for operators."""
        context = {
            **self.each_context(request),
            "title": "All settings and records",
            "subtitle": None,
            "app_list": self.get_app_list(request),
        }
        request.current_app = self.name
        return TemplateResponse(request, "admin/index.html", context)

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)
        if app_label:
            return apps
        # People are managed with tenants; the rest of auth (groups) is plumbing.
        users = [m for a in apps if a["app_label"] == "auth" for m in a["models"] if m["object_name"] == "User"]
        for app in apps:
            if app["app_label"] == "auth":
                app["models"] = [m for m in app["models"] if m["object_name"] != "User"]
            if app["app_label"] == "tenants":
                app["models"] = [*app["models"], *users]
        internal = [a for a in apps if a["app_label"] in INTERNAL_APPS and a["models"]]
        own = [a for a in apps if a["app_label"] not in INTERNAL_APPS]
        own.sort(
            key=lambda a: (
                SECTION_ORDER.index(a["app_label"]) if a["app_label"] in SECTION_ORDER else len(SECTION_ORDER),
                a["name"],
            )
        )
        if internal:
            models = [{**m, "name": f"{m['name']} ({a['name']})"} for a in internal for m in a["models"]]
            from django.urls import reverse

            own.append(
                {
                    "name": "Internals (scheduler tables, token blacklist, groups)",
                    "app_label": "internals",
                    "app_url": reverse("admin:models", current_app=self.name) + "#internals",
                    "has_module_perms": True,
                    "models": models,
                }
            )
        return own
