"""Start-up checks of the catalog's settings: a typo in SHOP_CURRENCY fails `manage.py check`
(and so `migrate` and the launcher) instead of the first import refusing every row."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, register

from .choices import Currency


@register()
def check_shop_currency(app_configs, **kwargs) -> list[Error]:
    if settings.SHOP_CURRENCY in Currency.values:
        return []
    return [
        Error(
            f"SHOP_CURRENCY {settings.SHOP_CURRENCY!r} is not a currency the catalog knows",
            hint=f"Set SHOP_CURRENCY to one of {', '.join(Currency.values)}.",
            id="catalog.E001",
        )
    ]
