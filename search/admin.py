from __future__ import annotations

from django.contrib import admin

from .models import Synonym


@admin.register(Synonym)
class SynonymAdmin(admin.ModelAdmin):
    """Shoppers' words for the shop's: read by every search from the next one on."""

    list_display = ["phrase", "means", "is_active", "updated_at"]
    list_editable = ["means", "is_active"]
    search_fields = ["phrase", "means"]
