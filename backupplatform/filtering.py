"""List filters as django-filter ``FilterSet``s, with the platform's own errors.

A selector filters through a FilterSet (HackSoft's styleguide: ``FooFilter(filters, qs).qs``);
``QueryFilterSet.apply`` refuses bad values with one ``ValidationFailed`` naming every bad
parameter, in the words the documents show, instead of django-filter's form errors.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import django_filters
from django import forms
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from backupplatform.errors import ValidationFailed
from backupplatform.ids import parse_id


class IdField(forms.Field):
    """A primary key typed into a query string: 1 to 2**63 - 1 in ASCII digits."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        number = parse_id(value)
        if number is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return number


class IdFilter(django_filters.Filter):
    field_class = IdField


class TrueFalseField(forms.Field):
    """``true``/``false`` (or ``1``/``0``), any case; anything else is refused, not ignored."""

    default_error_messages = {"invalid": "Use true or false."}

    def to_python(self, value: Any) -> bool | None:
        if value in self.empty_values:
            return None
        word = str(value).strip().lower()
        if word not in ("true", "false", "1", "0"):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return word in ("true", "1")


class TrueFalseFilter(django_filters.Filter):
    field_class = TrueFalseField


class DateOrDateTimeField(forms.Field):
    """``YYYY-MM-DD`` (a ``date``) or an ISO 8601 date-time (an aware ``datetime``)."""

    default_error_messages = {"invalid": "Use a date (YYYY-MM-DD) or an ISO 8601 date-time."}

    def to_python(self, value: Any) -> date | datetime | None:
        if value in self.empty_values:
            return None
        try:
            when = parse_datetime(value)
            if when is not None:
                return when if timezone.is_aware(when) else timezone.make_aware(when)
            day = parse_date(value)
        except ValueError:  # shaped like a date, but not one (2026-02-30)
            day = None
        if day is None:
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return day


class DateBoundFilter(django_filters.Filter):
    """``created_at`` from (``lookup_expr="gte"``) or up to (``"lte"``) a moment; a date
    alone is the start of that day, or its end for an upper bound."""

    field_class = DateOrDateTimeField

    def filter(self, qs, value):
        if isinstance(value, date) and not isinstance(value, datetime):
            value = timezone.make_aware(datetime.combine(value, time.max if self.lookup_expr == "lte" else time.min))
        return super().filter(qs, value)


def choice_filter(field_name: str, choices: list[str]) -> django_filters.ChoiceFilter:
    """An exact match on one of ``choices``; anything else is "Must be one of: ..."."""
    return django_filters.ChoiceFilter(
        field_name=field_name,
        choices=[(c, c) for c in choices],
        error_messages={"invalid_choice": f"Must be one of: {', '.join(choices)}."},
    )


class QueryFilterSet(django_filters.FilterSet):
    @classmethod
    def apply(cls, filters: Any, queryset, *, location: str = "query"):
        """``queryset`` filtered by ``filters`` (a dict or a ``QueryDict``); bad values raise
        ``ValidationFailed`` with every bad parameter's message."""
        if not filters or not any(name in filters for name in cls.base_filters):
            return queryset  # nothing to filter by: no form to build and validate
        filterset = cls(filters, queryset=queryset)
        if not filterset.is_valid():
            details = {name: [str(message) for message in messages] for name, messages in filterset.errors.items()}
            raise ValidationFailed(details=details, location=location)
        return filterset.qs
