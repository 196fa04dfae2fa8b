"""Admin for servers, applications (sources inline) and storages.

Secrets are never rendered: credentials are write-only form fields (blank keeps the stored
value). The "Test connection" and "Test storage" actions call the same services as the
APIs, which record the audit event; the result is shown as an admin message.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from backupplatform import humanize
from backupplatform.admin_forms import (
    KeyValueField,
    LinesField,
    ServiceAdminMixin,
    ServiceModelForm,
    dry_run,
    form_field_for,
)
from backupplatform.errors import DomainError
from backups import services
from backups.models import (
    Application,
    Backup,
    Server,
    Source,
    Storage,
)
from tenants.scoping import TenantScopedAdminMixin, admin_tenant_ids

KEEP = "Leave blank to keep the stored value."


class ServiceBackedAdmin(ServiceAdminMixin, TenantScopedAdminMixin, admin.ModelAdmin):
    """Writes and deletes through the services (which record the audit events); the tenant
    of an existing row is fixed."""

    delete_service = None

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "tenant"] if obj is not None else fields

    def delete_model(self, request, obj):
        try:
            type(self).delete_service(obj)
        except DomainError as exc:
            self.message_user(request, f"{obj}: {exc.message}", messages.ERROR)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)


class ServerForm(ServiceModelForm):
    tags = KeyValueField(label="Tags")
    username = forms.CharField(required=False, max_length=200)
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False), help_text=KEEP)
    ssh_key = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), help_text=f"Private key (OpenSSH or PEM). {KEEP}"
    )
    clear_secrets = forms.BooleanField(required=False, help_text="Remove the stored password and SSH key.")

    class Meta:
        model = Server
        fields = ["tenant", "name", "description", "type", "environment", "host", "port", "tags"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["username"].initial = (self.instance.credentials or {}).get("username", "")
        self.fields["ssh_key"].initial = ""

    def write(self) -> Server:
        data = self.cleaned_data
        credentials = {"username": data.get("username") or None}
        if data.get("clear_secrets"):
            credentials.update(password=None, ssh_key=None)
        credentials.update({k: data[k] for k in ("password", "ssh_key") if data.get(k)})
        fields = {
            k: data[k] for k in ("name", "description", "type", "environment", "host", "port", "tags") if k in data
        }
        if self.instance.pk:
            current = Server.objects.get(pk=self.instance.pk)  # a dry run must not touch the form's row
            return services.server_update(
                server=current, credentials=credentials, **{k: v for k, v in fields.items() if k in self.changed_data}
            )
        credentials = {k: v for k, v in credentials.items() if v}
        return services.server_create(tenant=data["tenant"], credentials=credentials, **fields)


class TenantRowsMixin:
    """Admin actions act only on rows of tenants the user administers."""

    def _tenant_rows(self, request, queryset):
        ids = admin_tenant_ids(request)
        return queryset if ids is None else queryset.filter(tenant_id__in=ids)


@admin.register(Server)
class ServerAdmin(TenantRowsMixin, ServiceBackedAdmin):
    form = ServerForm
    list_display = ["name", "tenant", "type", "host", "port", "environment", "health", "last_heartbeat", "back_up"]
    list_filter = ["type", "health_status", "environment", "tenant"]
    ordering = ["name"]
    search_fields = ["name", "host"]
    readonly_fields = ["health_status", "health_message", "last_heartbeat", "created_at", "updated_at"]
    actions = ["test_connection"]
    delete_service = staticmethod(lambda server: services.server_delete(server=server))

    @admin.display(description="Health", ordering="health_status")
    def health(self, obj):
        return humanize.badge(obj.health_status, obj.get_health_status_display())

    @admin.display(description="")
    def back_up(self, obj):
        if obj.type not in ("postgresql", "mysql"):
            return ""
        return format_html('<a href="{}">Back up now</a>', reverse("admin:console_server_backup", args=[obj.pk]))

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for server in self._tenant_rows(request, queryset):
            result = services.server_test_connection(server=server)
            level = messages.SUCCESS if result.success else messages.WARNING
            self.message_user(request, f"{server.name}: {result.message} ({result.latency_ms} ms)", level)


class SourceFormSet(forms.BaseInlineFormSet):
    """An application's sources, validated and written by the application service: the
    whole list replaces the stored one, exactly as ``PUT .../applications/{id}`` does."""

    ITEM_FIELDS = ("name", "type", "database_name", "path", "include", "exclude", "component")

    def kept_forms(self) -> list[forms.Form]:
        kept = [f for f in self.forms if f.has_changed() or f.instance.pk]
        kept = [f for f in kept if not (self.can_delete and self._should_delete_form(f))]
        return sorted(kept, key=lambda f: (f.cleaned_data.get("position") or 0, self.forms.index(f)))

    def items(self) -> list[dict]:
        items = []
        for form in self.kept_forms():
            data = form.cleaned_data
            item = {k: data.get(k) for k in self.ITEM_FIELDS}
            item["include"], item["exclude"] = item["include"] or [], item["exclude"] or []
            item["server_id"] = data["server"].pk if data.get("server") else None
            if form.instance.pk:
                item["id"] = form.instance.pk
            items.append(item)
        return items

    def write(self, app: Application) -> Application:
        """Create or update ``app`` (the parent form's values) with these sources."""
        fields = {k: getattr(app, k) for k in ("name", "namespace", "labels", "description")}
        if app.pk:
            return services.application_update(app=Application.objects.get(pk=app.pk), sources=self.items(), **fields)
        return services.application_create(tenant=app.tenant, sources=self.items(), **fields)

    def clean(self) -> None:
        super().clean()
        if any(self.errors) or self.instance.tenant_id is None or not self.instance.name:
            return
        error = dry_run(lambda: self.write(self.instance))
        if error is None:
            return
        kept, loose = self.kept_forms(), []
        for key, msgs in (error.details if isinstance(error.details, dict) else {"": [error.message]}).items():
            msgs = msgs if isinstance(msgs, list) else [msgs]
            index, _, field = str(key).partition("].")
            if index.startswith("sources[") and index[8:].isdigit() and int(index[8:]) < len(kept):
                form = kept[int(index[8:])]
                field = form_field_for(form, field)
                form.add_error(field, msgs)
            else:
                loose.extend(f"{key}: {m}" if key else str(m) for m in msgs)
        if loose:
            raise forms.ValidationError(loose)


class SourceForm(forms.ModelForm):
    include = LinesField(
        help_text="Glob patterns, one per line (e.g. *.jpg); empty: everything",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 24}),
    )
    exclude = LinesField(
        help_text="Glob patterns, one per line (e.g. cache/*)", widget=forms.Textarea(attrs={"rows": 2, "cols": 24})
    )

    class Meta:
        model = Source
        fields = ["name", "type", "server", "database_name", "path", "include", "exclude", "component", "position"]


class SourceInline(admin.StackedInline):
    model = Source
    form = SourceForm
    formset = SourceFormSet
    extra = 0
    fields = ["name", "type", "server", "database_name", "path", "include", "exclude", "component", "position"]

    # Sources are part of their application: whoever may edit the application (a superuser,
    # or an admin of its tenant) edits its sources, without separate model permissions.
    def _allowed(self, request, obj) -> bool:
        ids = admin_tenant_ids(request)
        if ids is None:
            return request.user.is_active and request.user.is_staff
        return bool(ids) and (obj is None or obj.tenant_id in ids)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj)

    def has_add_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._allowed(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "server":
            ids = admin_tenant_ids(request)
            if ids is not None:
                kwargs["queryset"] = Server.objects.filter(tenant_id__in=ids)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ApplicationForm(forms.ModelForm):
    labels = KeyValueField()

    class Meta:
        model = Application
        fields = ["tenant", "name", "namespace", "labels", "description"]


@admin.register(Application)
class ApplicationAdmin(ServiceBackedAdmin):
    form = ApplicationForm
    fields = ["tenant", "name", "namespace", "labels", "description", "is_default"]
    list_display = ["name", "tenant", "namespace", "source_count", "last_result", "updated_at", "back_up"]
    ordering = ["name"]
    list_filter = ["is_default", "tenant"]
    search_fields = ["name", "namespace"]
    inlines = [SourceInline]
    delete_service = staticmethod(lambda app: services.application_delete(app=app))

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "is_default"]

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(n_sources=Count("sources"))

    @admin.display(description="Sources", ordering="n_sources")
    def source_count(self, obj):
        return obj.n_sources

    @admin.display(description="Last backup")
    def last_result(self, obj):
        last = Backup.objects.filter(application=obj).order_by("-created_at").first()
        if last is None:
            return humanize.badge("never", "never")
        return format_html("{} {}", humanize.badge(last.status), f"{last.created_at:%d %b %H:%M}")

    @admin.display(description="")
    def back_up(self, obj):
        return format_html('<a href="{}">Back up now</a>', reverse("admin:console_application_backup", args=[obj.pk]))

    def save_form(self, request, form, change):
        return form.save(commit=False)

    def save_model(self, request, obj, form, change):
        pass  # the application and its sources are written together in save_related

    def save_related(self, request, form, formsets, change):
        sources = next((f for f in formsets if isinstance(f, SourceFormSet)), None)
        if sources is not None:
            saved = sources.write(form.instance)
        else:
            app = form.instance
            fields = {k: getattr(app, k) for k in ("name", "namespace", "labels", "description")}
            saved = (
                services.application_update(app=Application.objects.get(pk=app.pk), **fields)
                if app.pk
                else services.application_create(tenant=app.tenant, **fields)
            )
        form.instance.pk = saved.pk
        form.instance._state.adding = False
        for formset in formsets:  # what construct_change_message reads after a save
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []


# What each storage type asks for (backups/storage/validation.py): its configuration fields,
# then its secrets, which are write-only (blank keeps the stored value).
STORAGE_FIELDS = {
    "local": ["path"],
    "s3": ["bucket", "region", "endpoint_url", "path_prefix", "addressing_style"],
    "minio": ["endpoint_url", "bucket", "region", "path_prefix", "addressing_style"],
    "sftp": ["host", "port", "path", "username", "host_key"],
    "gcs": ["bucket", "path_prefix", "project_id", "endpoint_url"],
    "azure": ["account_name", "container", "path_prefix"],
}
STORAGE_SECRETS = {
    "local": [],
    "s3": ["access_key_id", "secret_access_key", "session_token"],
    "minio": ["access_key_id", "secret_access_key"],
    "sftp": ["password", "private_key", "passphrase"],
    "gcs": ["service_account_json"],
    "azure": ["account_key", "connection_string"],
}
CONFIG_FIELD_NAMES = sorted({f for fields in STORAGE_FIELDS.values() for f in fields})
SECRET_FIELD_NAMES = sorted({f for fields in STORAGE_SECRETS.values() for f in fields})


def _storage_form_fields() -> dict[str, forms.Field]:
    text = {"required": False, "max_length": 1024}
    secret = {"required": False, "widget": forms.PasswordInput(render_value=False), "help_text": KEEP}
    return {
        "path": forms.CharField(label="Folder", help_text="Absolute path, e.g. /var/backups/acme", **text),
        "bucket": forms.CharField(label="Bucket", **text),
        "region": forms.CharField(label="Region", help_text="e.g. eu-west-1 (optional for MinIO)", **text),
        "endpoint_url": forms.CharField(
            label="Endpoint URL",
            help_text="S3-compatible services, MinIO, a GCS emulator: e.g. https://minio.example.com:9000",
            **text,
        ),
        "path_prefix": forms.CharField(
            label="Path prefix", help_text="Folder inside the bucket, e.g. backups/prod", **text
        ),
        "addressing_style": forms.ChoiceField(
            label="Addressing style",
            required=False,
            choices=[
                ("", "automatic"),
                ("path", "path (MinIO and most S3-compatible servers)"),
                ("virtual", "virtual host"),
            ],
        ),
        "host": forms.CharField(label="Host", **text),
        "port": forms.IntegerField(label="Port", required=False, min_value=1, max_value=65535, help_text="Default 22"),
        "username": forms.CharField(label="User name", **text),
        "host_key": forms.CharField(
            label="Host key",
            help_text='The server\'s public key, "ssh-ed25519 AAAA..." (recommended: refuses another server)',
            **text,
        ),
        "project_id": forms.CharField(label="Project ID", **text),
        "account_name": forms.CharField(label="Account name", **text),
        "container": forms.CharField(label="Container", **text),
        "access_key_id": forms.CharField(label="Access key ID", **secret),
        "secret_access_key": forms.CharField(label="Secret access key", **secret),
        "session_token": forms.CharField(label="Session token", **secret),
        "password": forms.CharField(label="Password", **secret),
        "private_key": forms.CharField(
            label="Private key",
            **{
                **secret,
                "widget": forms.Textarea(
                    attrs={"rows": 3, "autocomplete": "off", "placeholder": "stored; paste a new key to replace it"}
                ),
            },
        ),
        "passphrase": forms.CharField(label="Key passphrase", **secret),
        "service_account_json": forms.CharField(
            label="Service account key (JSON)",
            **{
                **secret,
                "widget": forms.Textarea(
                    attrs={
                        "rows": 3,
                        "autocomplete": "off",
                        "placeholder": "stored; paste a new key file to replace it",
                    }
                ),
            },
        ),
        "account_key": forms.CharField(label="Account key", **secret),
        "connection_string": forms.CharField(label="Connection string", **secret),
    }


class StorageForm(ServiceModelForm):
    labels = KeyValueField()

    """A storage's settings as the fields its type needs (no JSON to type); secrets are
    write-only: the form never shows them, blank keeps them, ``clear_secrets`` removes them."""

    clear_secrets = forms.BooleanField(required=False, help_text="Remove every stored secret of this storage.")
    other_errors_field = None

    class Meta:
        model = Storage
        fields = [
            "tenant",
            "name",
            "description",
            "type",
            "status",
            "labels",
            "is_default",
            "price_per_gb_month",
            "quota_bytes",
            "cleanup_threshold",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = self.instance.configuration or {} if self.instance.pk else {}
        for name in CONFIG_FIELD_NAMES:
            if name in config and not isinstance(config[name], dict | list):
                self.fields[name].initial = config[name]
        stored = set((self.instance.credentials or {}) if self.instance.pk else {})
        for name in SECRET_FIELD_NAMES:
            if name in stored:
                self.fields[name].help_text = f"Stored. {KEEP}"
        if "quota_bytes" in self.fields:
            self.fields["quota_bytes"].help_text = "Bytes this storage may hold, e.g. 500000000000 for 500 GB"
        kind = self.data.get("type") if self.is_bound and "type" in self.fields else self.instance.type
        secrets = STORAGE_SECRETS.get(kind or "", [])
        # Credential problems are reported under "credentials": show them on the first secret.
        self.error_aliases = {"credentials": secrets[0] if secrets else "type", "configuration": "type"}

    @property
    def kind(self) -> str:
        return (self.cleaned_data.get("type") if "type" in self.fields else None) or self.instance.type

    def _configuration(self) -> dict:
        data = self.cleaned_data
        return {k: data[k] for k in STORAGE_FIELDS.get(self.kind, []) if data.get(k) not in (None, "")}

    def _secrets(self) -> dict:
        return {k: self.cleaned_data[k] for k in STORAGE_SECRETS.get(self.kind, []) if self.cleaned_data.get(k)}

    def write(self) -> Storage:
        data = self.cleaned_data
        fields = {
            k: data[k]
            for k in (
                "name",
                "description",
                "status",
                "labels",
                "is_default",
                "quota_bytes",
                "price_per_gb_month",
                "cleanup_threshold",
            )
            if k in data
        }
        if self.instance.pk:
            current = Storage.objects.get(pk=self.instance.pk)
            changes = {k: v for k, v in fields.items() if k in self.changed_data}
            # The type's fields replace theirs (a field emptied removes its key); keys the form
            # does not show (encryption settings, thresholds set through an API) are kept.
            shown = STORAGE_FIELDS.get(current.type, [])
            configuration = {k: v for k, v in (current.configuration or {}).items() if k not in shown}
            configuration.update(self._configuration())
            if configuration != (current.configuration or {}):
                changes["configuration"] = {**dict.fromkeys(current.configuration or {}), **configuration}
            if data.get("clear_secrets"):
                changes["credentials"] = {**dict.fromkeys(current.credentials or {}), **self._secrets()}
            elif self._secrets():
                changes["credentials"] = self._secrets()
            return services.storage_update(storage=current, **changes)
        threshold = fields.pop("cleanup_threshold", None)
        created = services.storage_create(
            tenant=data["tenant"],
            type=data["type"],
            configuration=self._configuration(),
            credentials=self._secrets(),
            **fields,
        )
        return services.storage_update(storage=created, cleanup_threshold=threshold) if threshold else created


# The type's fields are declared on the form (the admin renders declared fields only).
StorageForm.declared_fields.update(_storage_form_fields())
StorageForm.base_fields.update(_storage_form_fields())


@admin.register(Storage)
class StorageAdmin(TenantRowsMixin, ServiceBackedAdmin):
    form = StorageForm

    def get_fieldsets(self, request, obj=None):
        readonly = set(self.get_readonly_fields(request, obj))
        main = [f for f in ("tenant", "name", "description", "type", "status", "is_default")]
        connect = [*[f for f in CONFIG_FIELD_NAMES if f not in ("port",)], "port", *SECRET_FIELD_NAMES, "clear_secrets"]
        connect = [f for f in sorted(set(connect), key=connect.index) if f not in readonly]
        limits = ["quota_bytes", "cleanup_threshold", "price_per_gb_month", "labels"]
        state = [
            f
            for f in (
                "stored_credentials",
                "last_tested_at",
                "last_test_ok",
                "last_test_message",
                "created_at",
                "updated_at",
            )
            if f in readonly
        ]
        return [
            (None, {"fields": main}),
            (
                "Where and how to connect",
                {
                    "fields": connect,
                    "classes": ["storage-connect"],
                    "description": "Only the fields of the chosen type are shown. "
                    "Secrets are never shown again once saved.",
                },
            ),
            ("Limits and labels", {"fields": limits}),
            ("State", {"fields": state}),
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        import json as _json

        fields = {t: [*STORAGE_FIELDS[t], *STORAGE_SECRETS[t]] for t in STORAGE_FIELDS}
        context["storage_type_fields"] = _json.dumps({"fields": fields, "current": obj.type if obj else ""})
        return super().render_change_form(request, context, add, change, form_url, obj)

    list_display = ["name", "tenant", "type", "state", "usage", "is_default", "last_test", "price_per_gb_month"]
    ordering = ["name"]
    list_filter = ["type", "status", "tenant"]
    search_fields = ["name"]
    readonly_fields = [
        "stored_credentials",
        "last_tested_at",
        "last_test_ok",
        "last_test_message",
        "created_at",
        "updated_at",
    ]
    actions = ["test_storage"]
    delete_service = staticmethod(lambda storage: services.storage_delete(storage=storage))

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields.append("type")  # another type is another storage
        # The price is the platform operator's to set (usage costs), not the tenant's.
        return fields if request.user.is_superuser else [*fields, "price_per_gb_month"]

    def get_queryset(self, request):
        from django.db.models import Count, IntegerField, Q, Sum, Value
        from django.db.models.functions import Coalesce

        done = Q(backups__status="completed")
        return (
            super()
            .get_queryset(request)
            .annotate(
                used_bytes=Coalesce(Sum("backups__stored_bytes", filter=done), Value(0), output_field=IntegerField()),
                backup_count=Count("backups", filter=done),
            )
        )

    @admin.display(description="Status", ordering="status")
    def state(self, obj: Storage):
        return humanize.badge(obj.status, obj.get_status_display())

    @admin.display(description="Used")
    def usage(self, obj: Storage):
        used = humanize.size(obj.used_bytes)
        if obj.quota_bytes:
            return f"{used} of {humanize.size(obj.quota_bytes)} ({obj.used_bytes * 100 // obj.quota_bytes} %)"
        return f"{used} · {obj.backup_count} backup(s)"

    @admin.display(description="Last test", ordering="last_tested_at")
    def last_test(self, obj: Storage):
        if obj.last_test_ok is None:
            return "-"
        badge = humanize.badge("ok" if obj.last_test_ok else "failed", "ok" if obj.last_test_ok else "failed")
        return format_html("{} {}", badge, f"{obj.last_tested_at:%d %b %H:%M}" if obj.last_tested_at else "")

    @admin.display(description="Stored credentials")
    def stored_credentials(self, obj: Storage) -> str:
        shown = services.storage_public_credentials(obj.credentials)
        return ", ".join(f"{k}: {v}" for k, v in shown.items()) or "none"

    @admin.action(description="Test storage")
    def test_storage(self, request, queryset):
        for storage in self._tenant_rows(request, queryset):
            try:
                result = services.storage_probe(storage=storage)
            except DomainError as exc:
                self.message_user(request, f"{storage.name}: {exc.message}", messages.ERROR)
                continue
            level = messages.SUCCESS if result.ok else messages.WARNING
            self.message_user(request, f"{storage.name}: {result.message} ({result.latency_ms} ms)", level)
