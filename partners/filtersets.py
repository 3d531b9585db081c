"""The product list's filters as a django-filter FilterSet, derived from the declaration
(catalog/searchable.py) like every other filter in the shop."""

from __future__ import annotations

import functools
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from catalog import searchable
from catalog.models import Category, Product

TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off", ""}


class StrictBooleanField(forms.Field):
    """true/false (1/0, yes/no); anything else is an error, not a silent "unset"."""

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise forms.ValidationError("Must be true or false.", code="invalid")


@extend_schema_field(OpenApiTypes.BOOL)
class FlagFilter(django_filters.Filter):
    """A declared yes/no filter: `true` applies its condition, `false` or absent does not."""

    field_class = StrictBooleanField

    def __init__(self, *args: Any, condition: dict[str, object], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.condition = condition

    def filter(self, qs: QuerySet, value: bool | None) -> QuerySet:
        return qs.filter(**self.condition) if value else qs


class DeclaredRangesForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for attribute in searchable.filters():
            if attribute.kind is searchable.FilterKind.RANGE:
                low, high = (cleaned.get(param) for param in attribute.params)
                if low is not None and high is not None and low > high:
                    label = attribute.label.lower()
                    self.add_error(attribute.params[0], f"The minimum {label} is above the maximum {label}.")
        return cleaned


def _declared_filters() -> dict[str, django_filters.Filter]:
    filters: dict[str, django_filters.Filter] = {}
    for attribute in searchable.filters():
        if attribute.kind is searchable.FilterKind.CATEGORY:
            filters[attribute.name] = django_filters.ModelChoiceFilter(
                field_name=attribute.name, to_field_name="slug", queryset=Category.objects.all()
            )
        elif attribute.kind is searchable.FilterKind.CHOICE:
            assert attribute.choices is not None
            filters[attribute.name] = django_filters.ChoiceFilter(
                field_name=attribute.name, choices=attribute.choices.choices
            )
        elif attribute.kind is searchable.FilterKind.RANGE:
            low, high = attribute.params
            filters[low] = django_filters.NumberFilter(field_name=attribute.name, lookup_expr="gte", min_value=0)
            filters[high] = django_filters.NumberFilter(field_name=attribute.name, lookup_expr="lte", min_value=0)
        else:
            assert attribute.orm_condition is not None
            filters[attribute.name] = FlagFilter(condition=attribute.orm_condition)
    return filters


@functools.cache
def _filterset_for(declaration: tuple[searchable.Attribute, ...]) -> type[django_filters.FilterSet]:
    meta = type("Meta", (), {"model": Product, "fields": [], "form": DeclaredRangesForm})
    return type("ProductFilterSet", (django_filters.FilterSet,), {**_declared_filters(), "Meta": meta})


def product_filterset() -> type[django_filters.FilterSet]:
    """The FilterSet of the declaration in force."""
    return _filterset_for(searchable.attributes())


class ListFilterBackend(DjangoFilterBackend):
    """Filters the product list only: a product by SKU is found whatever the query string says."""

    def filter_queryset(self, request: Any, queryset: QuerySet, view: Any) -> QuerySet:
        if getattr(view, "action", None) != "list":
            return queryset
        return super().filter_queryset(request, queryset, view)
