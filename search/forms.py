from __future__ import annotations

from django import forms
from django.conf import settings

from catalog.choices import Gemstone, Metal
from catalog.models import Category
from catalog.validators import SKU_MAX_LENGTH, validate_sku

from .query import Filters


def _choices(enum) -> list[tuple[str, str]]:
    return [("", "Any"), *list(enum.choices)]


class SearchForm(forms.Form):
    """The shopper's query: words, a photo reference, filters. All optional but one."""

    text = forms.CharField(
        required=False,
        max_length=300,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "rose gold oval sapphire ring", "type": "search"}),
    )
    image_ref = forms.RegexField(regex=r"^[0-9a-f]{64}$", required=False, widget=forms.HiddenInput)
    similar = forms.CharField(
        required=False, max_length=SKU_MAX_LENGTH, widget=forms.HiddenInput, validators=[validate_sku]
    )
    category = forms.ChoiceField(required=False)
    metal = forms.ChoiceField(required=False, choices=_choices(Metal))
    gemstone = forms.ChoiceField(required=False, choices=_choices(Gemstone))
    price_min = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=2, label="Min price")
    price_max = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=2, label="Max price")
    in_stock = forms.BooleanField(required=False, label="In stock only")
    k = forms.IntegerField(required=False, min_value=1, max_value=settings.SEARCH_MAX_K, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", "Any"), *list(Category.objects.values_list("slug", "name"))]

    def clean(self):
        cleaned = super().clean()
        low, high = cleaned.get("price_min"), cleaned.get("price_max")
        if low is not None and high is not None and low > high:
            raise forms.ValidationError("The minimum price is above the maximum price.")
        return cleaned

    def filters(self) -> Filters:
        data = self.cleaned_data
        return Filters(
            category=data.get("category") or None,
            metal=data.get("metal") or None,
            gemstone=data.get("gemstone") or None,
            price_min=data.get("price_min"),
            price_max=data.get("price_max"),
            in_stock=bool(data.get("in_stock")),
        )

    def has_query(self) -> bool:
        data = self.cleaned_data
        return bool(data.get("text") or data.get("image_ref") or data.get("similar"))


class PhotoUploadForm(forms.Form):
    image = forms.FileField(required=True)
