"""Partner API keys in the admin: create (the key is shown once), scope, expire, revoke."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from .choices import Scope, all_scopes
from .models import PartnerAPIKey

# The library's own key model authenticates nothing here: hide it so no one issues one.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


class PartnerAPIKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=all_scopes,
        help_text=PartnerAPIKey._meta.get_field("scopes").help_text,
    )

    class Meta:
        model = PartnerAPIKey
        fields = ["name", "scopes", "expiry_date", "revoked"]


@admin.register(PartnerAPIKey)
class PartnerAPIKeyAdmin(APIKeyModelAdmin):
    form = PartnerAPIKeyForm
    # rest_framework_api_key leaves these unannotated, so mypy pins them to its own tuples' lengths.
    list_display = ["prefix", "name", "scope_list", "created", "last_used_at", "expiry_date", "_has_expired", "revoked"]  # type: ignore[assignment]
    list_filter = ["revoked", "created"]  # type: ignore[assignment]

    def get_readonly_fields(self, request, obj=None) -> tuple[str, ...]:
        fields = (*super().get_readonly_fields(request, obj), "last_used_at")
        return (*fields, "scopes") if obj is not None and obj.revoked else fields

    @admin.display(description="scopes")
    def scope_list(self, obj: PartnerAPIKey) -> str:
        return ", ".join(obj.scopes)
