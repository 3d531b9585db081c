"""What an API key may do. A key carries one or more scopes; every endpoint needs one."""

from __future__ import annotations

from django.db import models


class Scope(models.TextChoices):
    SEARCH = "search", "Search (photo/text search, similar products)"
    CATALOG = "catalog", "Catalog (products and categories)"


def all_scopes() -> list[str]:
    return list(Scope.values)
