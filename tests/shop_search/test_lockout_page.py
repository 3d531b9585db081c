"""The admin lock-out is a styled page (429) that says when signing in works again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.utils import timezone

pytestmark = pytest.mark.django_db


def _fail_until_locked(client: Client, limit: int):
    for _ in range(limit - 1):
        client.post("/admin/login/", {"username": "admin", "password": "wrong"})
    return client.post("/admin/login/", {"username": "admin", "password": "wrong"})


def test_lockout_answers_a_styled_429_that_says_when_to_try_again(admin_user, settings):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    response = _fail_until_locked(attacker, settings.AXES_FAILURE_LIMIT)
    html = response.content.decode()
    assert response.status_code == 429
    assert response["Content-Type"].startswith("text/html")
    assert "/static/admin/css/base.css" in html  # the admin's own look
    assert "Too many failed sign-ins" in html
    assert "Try again in 15 minutes, at " in html
    assert 14 * 60 < int(response["Retry-After"]) <= 15 * 60
    assert "“admin”" in html


def test_each_try_while_locked_starts_the_wait_again_and_the_page_says_so(admin_user, settings):
    attacker = Client(REMOTE_ADDR="203.0.113.9")
    _fail_until_locked(attacker, settings.AXES_FAILURE_LIMIT)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=11))
    response = attacker.post("/admin/login/", {"username": "admin", "password": "password"})
    assert response.status_code == 429  # the right password is refused too
    assert "Try again in 15 minutes" in response.content.decode()
    assert "each try before then starts the wait again" in response.content.decode()


def test_the_wait_shown_is_counted_from_the_last_failure(settings):
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    from shop_search.lockout import lockout_response

    attempt = AccessAttempt.objects.create(
        username="admin", ip_address="203.0.113.9", user_agent="", failures_since_start=5, path_info="/admin/login/"
    )
    AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=timezone.now() - timedelta(minutes=11))
    request = RequestFactory().post("/admin/login/", REMOTE_ADDR="203.0.113.9")
    request.user, request.axes_ip_address = AnonymousUser(), "203.0.113.9"
    response = lockout_response(request, None, {"username": "admin"})
    assert response.status_code == 429
    assert "Try again in 4 minutes" in response.content.decode()
    assert 3 * 60 < int(response["Retry-After"]) <= 4 * 60
