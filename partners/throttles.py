"""Rate limits per API key and scope, counted in the shared cache (Redis), so every
web process sees the same counts."""

from __future__ import annotations

from typing import cast

from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from .models import PartnerAPIKey


class APIKeyRateThrottle(ScopedRateThrottle):
    """`throttle_scope` on the view picks the rate; the key's prefix is the identity.

    Not the IP: a partner's servers share one key from many addresses, and many
    partners can sit behind one proxy.
    """

    def get_rate(self) -> str | None:
        # Read at request time (DRF binds the rates at import), so settings changes apply.
        assert self.scope is not None  # allow_request asks for a rate only for a view with a scope
        # The DRF stubs type the rates as numbers; DRF's own are "N/period" strings (or None).
        rates = cast(dict[str, str | None], api_settings.DEFAULT_THROTTLE_RATES)
        try:
            return rates[self.scope]
        except KeyError:
            raise ImproperlyConfigured(f"No rate in DEFAULT_THROTTLE_RATES for scope {self.scope!r}") from None

    def get_cache_key(self, request, view) -> str | None:
        if not isinstance(request.auth, PartnerAPIKey):
            return None  # public pages (schema, docs) are not counted
        return self.cache_format % {"scope": self.scope, "ident": request.auth.prefix}
