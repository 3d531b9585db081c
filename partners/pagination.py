"""Cursor (keyset) pagination: stable pages while the catalog changes, no COUNT(*)."""

from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    """Orders by the view's `cursor_ordering` (a unique field), so every list pages the same way."""

    ordering = ("pk",)
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        return tuple(getattr(view, "cursor_ordering", self.ordering))

    def decode_cursor(self, request):
        # A cursor a client mangled is bad input (400), not a missing page (DRF says 404).
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError(
                {self.cursor_query_param: [self.invalid_cursor_message]}, code="invalid_cursor"
            ) from None
        if cursor is not None and cursor.position is not None and "\x00" in cursor.position:
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}, code="invalid_cursor")
        return cursor
