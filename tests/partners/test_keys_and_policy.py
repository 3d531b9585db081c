"""API keys (401/403, revocation, expiry, last use), throttling per key, CORS."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.throttling import SimpleRateThrottle

from partners.choices import Scope
from partners.models import PartnerAPIKey
from tests.partners.conftest import CATEGORIES_URL, PRODUCTS_URL, SEARCH_URL, assert_error

pytestmark = pytest.mark.django_db

PROTECTED = [
    ("post", SEARCH_URL),
    ("get", PRODUCTS_URL),
    ("get", f"{PRODUCTS_URL}RING-1/"),
    ("get", f"{PRODUCTS_URL}RING-1/similar/"),
    ("get", CATEGORIES_URL),
]


# --- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_every_endpoint_without_key_returns_401_and_json_error(make_client, method, url):
    response = getattr(make_client(), method)(url)
    error = assert_error(response, 401, "not_authenticated")
    assert "Api-Key" in error["message"]
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'


def test_search_without_key_returns_401_and_json_error(make_client, catalog):
    response = make_client().post(SEARCH_URL, {"text": "ring"}, format="json")
    assert_error(response, 401, "not_authenticated")
    assert response.has_header("WWW-Authenticate")


@pytest.mark.parametrize("header", ["Api-Key nope.nope", "Api-Key ", "Api-Key garbage-without-dot", "Bearer abc"])
def test_wrong_key_or_scheme_returns_401(make_client, make_key, header):
    make_key()
    client = make_client()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(CATEGORIES_URL)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'
    assert response.json()["error"]["code"] in {"authentication_failed", "not_authenticated"}


def test_key_with_right_prefix_but_wrong_secret_returns_401(make_client, api_key):
    record, _ = api_key
    forged = record.prefix + "." + "x" * 32
    assert_error(make_client(forged).get(CATEGORIES_URL), 401, "authentication_failed")


def test_revoked_key_returns_401(make_client, api_key):
    record, key = api_key
    assert make_client(key).get(CATEGORIES_URL).status_code == 200
    record.revoked = True
    record.save()
    response = make_client(key).get(CATEGORIES_URL)
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'


def test_expired_key_returns_401(make_client, make_key):
    _, key = make_key(expiry_date=timezone.now() - timedelta(seconds=1))
    assert_error(make_client(key).get(CATEGORIES_URL), 401, "authentication_failed")


def test_key_is_stored_hashed_with_a_visible_prefix(api_key):
    record, key = api_key
    stored = PartnerAPIKey.objects.get(pk=record.pk)
    assert key.startswith(stored.prefix + ".")
    assert key not in {stored.hashed_key, stored.id}
    assert key.split(".")[1] not in stored.hashed_key


# --- scopes ------------------------------------------------------------------------------


def test_catalog_only_key_cannot_search_403(make_client, make_key, catalog):
    _, key = make_key(scopes=[Scope.CATALOG])
    client = make_client(key)
    assert client.get(PRODUCTS_URL).status_code == 200
    error = assert_error(client.post(SEARCH_URL, {"text": "ring"}, format="json"), 403, "missing_scope")
    assert error["details"] == {"required_scope": "search", "key_scopes": ["catalog"]}
    assert "'search' scope" in error["message"]
    assert_error(client.get(f"{PRODUCTS_URL}RING-1/similar/"), 403, "missing_scope")


def test_search_only_key_cannot_read_catalog_403(make_client, make_key, catalog):
    _, key = make_key(scopes=[Scope.SEARCH])
    client = make_client(key)
    assert client.post(SEARCH_URL, {"text": "ring"}, format="json").status_code == 200
    assert client.get(f"{PRODUCTS_URL}RING-1/similar/").status_code == 200
    assert_error(client.get(PRODUCTS_URL), 403, "missing_scope")
    assert_error(client.get(CATEGORIES_URL), 403, "missing_scope")


# --- last use ----------------------------------------------------------------------------


def test_successful_request_records_last_use_once_a_minute(make_client, api_key):
    record, key = api_key
    assert record.last_used_at is None
    make_client(key).get(CATEGORIES_URL)
    first = PartnerAPIKey.objects.get(pk=record.pk).last_used_at
    assert first is not None
    assert timezone.now() - first < timedelta(seconds=5)
    make_client(key).get(CATEGORIES_URL)
    assert PartnerAPIKey.objects.get(pk=record.pk).last_used_at == first


def test_failed_requests_do_not_record_last_use(make_client, make_key, catalog):
    record, key = make_key(scopes=[Scope.CATALOG])
    forged = record.prefix + "." + "y" * 32
    make_client(forged).get(PRODUCTS_URL)  # failed auth
    make_client(key).post(SEARCH_URL, {"text": "ring"}, format="json")  # 403
    make_client(key).get(PRODUCTS_URL, {"metal": "tin"})  # 400
    make_client(key).get(f"{PRODUCTS_URL}NOPE/")  # 404
    assert PartnerAPIKey.objects.get(pk=record.pk).last_used_at is None


# --- create_api_key ------------------------------------------------------------------------


def test_create_api_key_command_prints_the_key_once_and_it_works(make_client):
    out, err = StringIO(), StringIO()
    call_command("create_api_key", "acme-site", "--scope", "search", stdout=out, stderr=err)
    key = out.getvalue().strip()
    record = PartnerAPIKey.objects.get(name="acme-site")
    assert key.startswith(record.prefix + ".")
    assert record.scopes == ["search"]
    assert record.expiry_date is None
    assert "cannot be shown again" in err.getvalue()
    assert key not in err.getvalue()
    assert_error(make_client(key).get(CATEGORIES_URL), 403, "missing_scope")


def test_create_api_key_defaults_to_all_scopes_and_can_expire():
    out = StringIO()
    call_command("create_api_key", "all-scopes", "--expires-in-days", "30", stdout=out, stderr=StringIO())
    record = PartnerAPIKey.objects.get(name="all-scopes")
    assert sorted(record.scopes) == ["catalog", "search"]
    assert timedelta(days=29) < record.expiry_date - timezone.now() <= timedelta(days=30)


@pytest.mark.parametrize("args", [["x" * 51], ["ok", "--expires-in-days", "0"]])
def test_create_api_key_rejects_bad_arguments(args):
    before = PartnerAPIKey.objects.count()
    with pytest.raises(CommandError):
        call_command("create_api_key", *args, stdout=StringIO(), stderr=StringIO())
    assert PartnerAPIKey.objects.count() == before


# --- admin -------------------------------------------------------------------------------


def test_admin_creates_a_scoped_key_shows_it_once_and_lists_last_use(admin_client, make_client):
    response = admin_client.post(
        "/admin/partners/partnerapikey/add/",
        {"name": "from-admin", "scopes": ["catalog"], "expiry_date": ""},
        follow=True,
    )
    assert response.status_code == 200
    record = PartnerAPIKey.objects.get(name="from-admin")
    assert record.scopes == ["catalog"]
    message = next(str(m) for m in response.context["messages"])
    key = message.split("is: ", 1)[1].split(". ", 1)[0]
    assert make_client(key).get(CATEGORIES_URL).status_code == 200
    listing = admin_client.get("/admin/partners/partnerapikey/").content.decode()
    assert record.prefix in listing
    assert key not in listing
    assert "Last used at" in listing


def test_admin_revokes_a_key(admin_client, make_client, api_key):
    record, key = api_key
    admin_client.post(
        f"/admin/partners/partnerapikey/{record.pk}/change/",
        {"name": record.name, "scopes": record.scopes, "revoked": "on", "expiry_date": ""},
    )
    assert PartnerAPIKey.objects.get(pk=record.pk).revoked
    assert make_client(key).get(CATEGORIES_URL).status_code == 401


def test_admin_hides_the_library_key_model_that_authenticates_nothing(admin_client):
    assert admin_client.get("/admin/rest_framework_api_key/apikey/").status_code == 404


def test_unacceptable_accept_header_returns_406_in_the_error_shape(make_client, api_key):
    assert_error(make_client(api_key[1]).get(CATEGORIES_URL, HTTP_ACCEPT="text/html"), 406, "not_acceptable")


# --- throttling --------------------------------------------------------------------------


@pytest.fixture
def tiny_rates(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"search": "2/min", "catalog": "3/min"},
    }


def test_throttling_returns_429_with_retry_after_then_recovers(make_client, api_key, tiny_rates):
    client = make_client(api_key[1])
    assert [client.get(CATEGORIES_URL).status_code for _ in range(3)] == [200, 200, 200]
    response = client.get(CATEGORIES_URL)
    error = assert_error(response, 429, "throttled")
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 60
    assert error["details"] == {"retry_after": retry_after}


def test_a_throttled_key_recovers_once_its_window_has_slid_past(make_client, api_key, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"search": "2/s", "catalog": "2/s"},
    }
    client = make_client(api_key[1])
    assert [client.get(CATEGORIES_URL).status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(1.05)  # counted by Redis' clock: nothing in this process can fake it
    assert client.get(CATEGORIES_URL).status_code == 200


def test_throttling_counts_per_key_not_per_ip(make_client, make_key, tiny_rates):
    _, first = make_key(name="first")
    _, second = make_key(name="second")
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):  # one key, three servers
        assert make_client(first, REMOTE_ADDR=address).get(CATEGORIES_URL).status_code == 200
    assert make_client(first, REMOTE_ADDR="10.0.0.4").get(CATEGORIES_URL).status_code == 429
    assert make_client(second, REMOTE_ADDR="10.0.0.1").get(CATEGORIES_URL).status_code == 200


def test_search_has_its_own_lower_rate_than_catalog_reads(make_client, api_key, catalog, tiny_rates):
    client = make_client(api_key[1])
    statuses = [client.post(SEARCH_URL, {"text": "ring"}, format="json").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.get(f"{PRODUCTS_URL}RING-1/similar/").status_code == 429  # similar is a search
    assert client.get(PRODUCTS_URL).status_code == 200  # catalog reads are counted apart


def test_default_rates_make_search_scarcer_than_catalog_reads(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    per_second = {
        scope: n / d for scope, (n, d) in ((s, SimpleRateThrottle.parse_rate(None, rate)) for s, rate in rates.items())
    }
    assert per_second["search"] < per_second["catalog"]


def test_throttle_counts_live_in_the_shared_cache(make_client, api_key, tiny_rates):
    from django.core.cache import cache
    from django_redis import get_redis_connection

    record, key = api_key
    make_client(key).get(CATEGORIES_URL)
    assert get_redis_connection("default").zcard(cache.make_key(f"throttle_catalog_{record.prefix}")) == 1


def test_200_api_requests_from_40_threads_at_60_per_minute_let_exactly_60_through(
    live_server, transactional_db, make_key, settings
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"search": "60/min", "catalog": "60/min"},
    }
    _, key = make_key()
    statuses, barrier, lock = [], threading.Barrier(40), threading.Lock()

    def partner_server() -> None:
        barrier.wait()
        for _ in range(5):
            request = urllib.request.Request(
                f"{live_server.url}{CATEGORIES_URL}", headers={"Authorization": f"Api-Key {key}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=partner_server) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) == [200, 429]
    assert statuses.count(200) == 60
    assert statuses.count(429) == 140


# --- CORS --------------------------------------------------------------------------------


def test_cors_allows_configured_partner_origin_on_the_api(make_client, api_key, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://partner.example"]
    preflight = make_client().options(
        SEARCH_URL,
        HTTP_ORIGIN="https://partner.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )
    assert preflight.status_code == 200
    assert preflight["Access-Control-Allow-Origin"] == "https://partner.example"
    assert "authorization" in preflight["Access-Control-Allow-Headers"]
    response = make_client(api_key[1]).get(CATEGORIES_URL, HTTP_ORIGIN="https://partner.example")
    assert response["Access-Control-Allow-Origin"] == "https://partner.example"
    assert "Retry-After" in response["Access-Control-Expose-Headers"]


def test_cors_refuses_other_origins_and_non_api_paths(make_client, api_key, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://partner.example"]
    response = make_client(api_key[1]).get(CATEGORIES_URL, HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response
    page = make_client().get("/admin/login/", HTTP_ORIGIN="https://partner.example")
    assert "Access-Control-Allow-Origin" not in page
