from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from catalog import searchable
from catalog.models import Category
from catalog.validators import SKU_MAX_LENGTH, validate_sku

from .query import Filters

ANY = ("", "Any")


def filter_fields() -> dict[str, forms.Field]:
    """The shopper's filter fields, one per declared attribute (catalog/searchable.py)."""
    fields: dict[str, forms.Field] = {}
    for attribute in searchable.filters():
        if attribute.kind is searchable.FilterKind.CATEGORY:
            choices = [ANY, *Category.objects.values_list("slug", "name")]
            fields[attribute.name] = forms.ChoiceField(required=False, choices=choices, label=attribute.label)
        elif attribute.kind is searchable.FilterKind.CHOICE:
            assert attribute.choices is not None
            choices = [ANY, *attribute.choices.choices]
            fields[attribute.name] = forms.ChoiceField(required=False, choices=choices, label=attribute.label)
        elif attribute.kind is searchable.FilterKind.RANGE:
            low, high = attribute.params
            for param, label in ((low, f"Min {attribute.label.lower()}"), (high, f"Max {attribute.label.lower()}")):
                fields[param] = forms.DecimalField(
                    required=False, min_value=0, max_digits=12, decimal_places=2, label=label
                )
        else:
            fields[attribute.name] = forms.BooleanField(required=False, label=attribute.label)
    return fields


class SearchForm(forms.Form):
    """The shopper's query: words, a photo reference, filters. All optional but one."""

    text = forms.CharField(
        required=False,
        max_length=settings.SEARCH_MAX_QUERY_CHARS,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "rose gold oval sapphire ring", "type": "search"}),
    )
    image_ref = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False, widget=forms.HiddenInput)
    similar = forms.CharField(
        required=False, max_length=SKU_MAX_LENGTH, widget=forms.HiddenInput, validators=[validate_sku]
    )
    k = forms.IntegerField(required=False, min_value=1, max_value=settings.SEARCH_MAX_K, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.update(filter_fields())

    def filter_fields(self) -> list[forms.BoundField]:
        """The filters' bound fields, in declaration order (the template lists these)."""
        return [self[name] for name in searchable.filter_params()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        for attribute in searchable.filters():
            if attribute.kind is searchable.FilterKind.RANGE:
                low, high = (cleaned.get(param) for param in attribute.params)
                if low is not None and high is not None and low > high:
                    raise forms.ValidationError(f"The minimum {attribute.label.lower()} is above the maximum.")
        return cleaned

    def filters(self) -> Filters:
        return Filters.from_data(self.cleaned_data)

    def has_query(self) -> bool:
        data = self.cleaned_data
        return bool(data.get("text") or data.get("image_ref") or data.get("similar"))
