"""Rate limits per API key and scope, counted in Redis in one atomic round trip
(search/ratelimit.py), so every web process and thread sees the same counts and none can
slip past the limit (DRF's own throttle reads, then writes: 20 threads got 77 of 60)."""

from __future__ import annotations

from typing import cast

from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

from search.ratelimit import hit

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

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        key = self.get_cache_key(request, view)
        if key is None or self.num_requests is None or self.duration is None:
            return True
        decision = hit(cache.make_key(key), self.num_requests, self.duration)
        self._wait = decision.retry_after
        return decision.allowed

    def wait(self) -> float:
        return self._wait
