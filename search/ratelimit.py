"""Rate limits counted in Redis, exact under concurrency: each decision is one Lua script
(one round trip, run atomically by Redis), so no two web threads or processes can both
take the last slot. The shopper page counts per client address, the partner API per key
(partners/throttles.py).

The window slides: at most `limit` requests in any `window` seconds, as DRF's own
throttles promise (a fixed window lets twice the limit through across its edge). Redis'
clock times the requests, so web hosts with skewed clocks count alike.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_redis import get_redis_connection
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# KEYS[1]: the log of one identity (a sorted set of request times, in microseconds).
# ARGV: limit, window in microseconds. Returns {allowed (0/1), microseconds to wait}.
_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. '-' .. count)
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000))
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
SHOPPER_SEARCH_SCOPE = "shopper_search"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float  # seconds until a slot frees up; 0 when allowed


def parse_rate(rate: str) -> tuple[int, int]:
    """'60/min' -> (60, 60): requests, seconds (DRF's format: s, m, h, d and longer words)."""
    count, _, period = rate.partition("/")
    return int(count), _PERIODS[period.strip()[0]]


def hit(key: str, limit: int, window_seconds: int, *, alias: str = "default") -> Decision:
    """Count one request for `key` (a full Redis key) if the window has room.

    Fails open: the limit is a guard for the model, and an outage of its counter must not
    take the site down with it (logged; the cache is an accelerator elsewhere too).
    """
    try:
        client = get_redis_connection(alias)
        allowed, wait_us = client.register_script(_SLIDING_WINDOW)(keys=[key], args=[limit, window_seconds * 1_000_000])
    except RedisError as exc:
        logger.warning("rate limit %s not counted: Redis unavailable (%s)", key, exc)
        return Decision(True, 0.0)
    return Decision(bool(allowed), max(0.0, wait_us / 1_000_000))


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT reverse proxies
    that append to X-Forwarded-For, the address the outermost one saw (what a client
    writes there itself comes before it and is never believed)."""
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")


def shopper_search_key(address: str | None) -> str:
    return cache.make_key(f"throttle_{SHOPPER_SEARCH_SCOPE}_{address or 'unknown'}")


def _is_search(request: HttpRequest) -> bool:
    """What runs the model: an upload, or a GET with a query (the bare home page does not)."""
    return request.method == "POST" or bool(request.GET)


def limit_shopper_searches(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """At most SHOPPER_SEARCH_RATE searches per client address; past it a page that says
    when to try again (429 with Retry-After), before the view decodes or encodes anything."""

    @wraps(view)
    def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if _is_search(request):
            limit, window = parse_rate(settings.SHOPPER_SEARCH_RATE)
            decision = hit(shopper_search_key(client_ip(request)), limit, window)
            if not decision.allowed:
                seconds = max(1, math.ceil(decision.retry_after))
                response = render(
                    request, "search/rate_limited.html", {"retry_after": seconds, "limit": limit}, status=429
                )
                response["Retry-After"] = str(seconds)
                return response
        return view(request, *args, **kwargs)

    return limited
