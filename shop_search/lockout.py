"""The admin's lock-out page (django-axes `AXES_LOCKOUT_CALLABLE`): a styled 429 that says
when signing in works again, counted from the last recorded failure. While locked, axes
records each further try and so restarts the wait, unless
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT is off; the page says which."""

from __future__ import annotations

import math

from axes.conf import settings
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from .security import client_ip


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    now = timezone.now()
    username = get_client_username(request, credentials) or ""
    address = getattr(request, "axes_ip_address", None) or client_ip(request)
    last_failure = AccessAttempt.objects.filter(username=username, ip_address=address).aggregate(
        last=Max("attempt_time")
    )["last"]
    cool_off = get_cool_off(request)
    retry_at = (last_failure or now) + cool_off if cool_off else None
    seconds = max(0, math.ceil((retry_at - now).total_seconds())) if retry_at else None
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed sign-ins",
        "username": username,
        "failure_limit": get_failure_limit(request, credentials),
        "retry_at": retry_at,
        "retry_minutes": math.ceil(seconds / 60) if seconds is not None else None,
        "each_try_restarts": settings.AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT,
    }
    response = render(request, "admin/lockout.html", context, status=429)
    if seconds is not None:
        response["Retry-After"] = str(seconds)
    return response
