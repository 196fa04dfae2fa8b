"""Admin forms that write through the domain services (one code path with the APIs).

The admin validates a form by running the very service call it will make on save inside a
savepoint that is always rolled back (``dry_run``): every rule of the service (tenant folders,
network policy, a source's server in the application's tenant, ...) applies, and its errors
land on the form's fields. Saving then calls the same service for real, which also records
the audit event; the admin writes nothing itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.db import transaction

from backupplatform.errors import DomainError


class _RolledBack(Exception):
    pass


def dry_run(call: Callable[[], Any]) -> DomainError | None:
    """Run ``call`` and undo everything it wrote; return the domain error it raised, if any.

    ``on_commit`` callbacks registered inside (events for sockets, queued tasks) are dropped
    with the savepoint, so nothing leaves the process either.
    """
    try:
        with transaction.atomic():
            call()
            raise _RolledBack
    except _RolledBack:
        return None
    except DomainError as exc:
        return exc


def form_field_for(form: forms.BaseForm, key: str, aliases: dict[str, str] | None = None) -> str | None:
    """The form field a service error key points at (``server_id`` -> ``server``,
    ``configuration.path`` -> ``configuration``), or ``None`` for a non-field error."""
    aliases = aliases or {}
    candidates = [
        key,
        aliases.get(key, ""),
        key.removesuffix("_id"),
        key.split(".", 1)[0],
        aliases.get(key.split(".", 1)[0], ""),
    ]
    return next((c for c in candidates if c and c in form.fields), None)


def add_service_errors(
    form: forms.BaseForm, exc: DomainError, aliases: dict[str, str] | None = None, other_field: str | None = None
) -> None:
    """Show a service's error on the form: each detail on its field, the rest on
    ``other_field`` or at the top."""
    details = exc.details if isinstance(exc.details, dict) and exc.details else None
    if details is None:
        form.add_error(None, exc.message)
        return
    for key, messages in details.items():
        messages = messages if isinstance(messages, list) else [messages]
        field = form_field_for(form, str(key), aliases) or other_field
        if field is None:
            form.add_error(None, [f"{key}: {m}" for m in messages])
        else:
            form.add_error(field, [str(m) for m in messages])


class ServiceModelForm(forms.ModelForm):
    """A ModelForm whose ``write()`` calls a service; validation dry-runs that same call.

    Subclasses implement ``write()`` (create or update through the service, returning the
    saved object). ``save()`` returns what ``write()`` returned; ModelAdmins using these forms
    mix in ``ServiceAdminMixin`` so that the admin does not save the object a second time.
    """

    error_aliases: dict[str, str] = {}
    # Where service error keys that name no field of the form go (e.g. a storage's
    # ``path`` error belongs to its ``configuration`` box); None: the top of the form.
    other_errors_field: str | None = None

    def write(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def ready_to_write(self) -> bool:
        """Whether the fields the service needs are there (else the field errors say why)."""
        return not self.errors

    def clean(self) -> dict:
        cleaned = super().clean()
        if self.ready_to_write():
            error = dry_run(self.write)
            if error is not None:
                add_service_errors(self, error, self.error_aliases, self.other_errors_field)
        return cleaned

    def _post_clean(self) -> None:
        # The service validates the row; the model's own full_clean would validate the
        # half-built instance a second time with other messages.
        pass

    def save(self, commit: bool = True) -> Any:
        saved = self.write()
        self.instance = saved
        return saved

    def save_m2m(self) -> None:
        """Nothing: the service wrote everything (ModelAdmin.save_related calls this)."""


class ServiceAdminMixin:
    """ModelAdmin side of ``ServiceModelForm``: the form's service call is the save."""

    def save_form(self, request, form, change):
        return form.instance

    def save_model(self, request, obj, form, change):
        saved = form.save()
        obj.pk = saved.pk
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})
        obj._state.adding = False
        obj._state.db = saved._state.db


# --- fields for what people type as lists and key/value pairs (instead of JSON boxes) -------


def _json_value(text: Any, kind: type) -> Any:
    import json

    text = (text or "").strip() if isinstance(text, str) else ""
    if not text.startswith("[" if kind is list else "{"):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, kind) else None


class LinesField(forms.CharField):
    """A list of strings, one per line (blank lines ignored)."""

    widget = forms.Textarea(attrs={"rows": 3})

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return "\n".join(str(v) for v in value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        parsed = _json_value(value, list)  # a pasted JSON list is taken as it is
        if parsed is not None:
            return [str(v) for v in parsed]
        return [line.strip() for line in (value or "").splitlines() if line.strip()]

    def has_changed(self, initial, data):
        if data is None:  # not submitted at all (a form without the field): unchanged
            return False
        return self.to_python(initial) != self.to_python(data)


class KeyValueField(forms.CharField):
    """A flat object of strings, one ``key=value`` per line."""

    widget = forms.Textarea(attrs={"rows": 3, "placeholder": "env=production\nteam=payments"})

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", "One key=value per line.")
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, dict):
            return "\n".join(f"{k}={v}" for k, v in value.items())
        return value

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        parsed = _json_value(value, dict)  # a pasted JSON object is taken as it is
        if parsed is not None:
            return parsed
        result = {}
        for number, line in enumerate((value or "").splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, item = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f'Line {number}: write key=value (got "{line.strip()[:60]}").')
            result[key.strip()] = item.strip()
        return result

    def has_changed(self, initial, data):
        try:
            return self.to_python(initial) != self.to_python(data)
        except forms.ValidationError:
            return True
