"""API fixtures: keys with scopes, clients that send them, an indexed catalog."""

from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from partners.choices import Scope
from partners.models import PartnerAPIKey
from tests.conftest import make_photo
from tests.factories import CategoryFactory, ProductFactory

SEARCH_URL = "/api/v1/search/"
PRODUCTS_URL = "/api/v1/products/"
CATEGORIES_URL = "/api/v1/categories/"


@pytest.fixture
def make_key(db):
    def make(scopes: list[str] | None = None, **fields) -> tuple[PartnerAPIKey, str]:
        return PartnerAPIKey.objects.create_key(
            name=fields.pop("name", "partner"), scopes=scopes or list(Scope.values), **fields
        )

    return make


@pytest.fixture
def make_client():
    def make(key: str | None = None, **headers) -> APIClient:
        client = APIClient()
        if key is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}", **headers)
        return client

    return make


@pytest.fixture
def api_key(make_key) -> tuple[PartnerAPIKey, str]:
    return make_key()


@pytest.fixture
def api_client(make_client, api_key) -> APIClient:
    """A client with a key that may search and read the catalog."""
    return make_client(api_key[1])


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    """Throttle counts live in the shared Redis: drop ours (only ours) around each test."""
    cache.delete_pattern("throttle_*")
    yield
    cache.delete_pattern("throttle_*")


@pytest.fixture
def catalog(db):
    """A small, embedded catalog: four active products with photos, one inactive."""
    from indexing.services import index_catalog

    ring, earring = CategoryFactory(name="Ring", slug="ring"), CategoryFactory(name="Earring", slug="earring")
    products = {
        "RING-1": ProductFactory(
            sku="RING-1",
            title="Oval sapphire ring",
            category=ring,
            metal="white_gold",
            gemstone="sapphire",
            price=Decimal("1500.00"),
            photos=[1],
        ),
        "RING-2": ProductFactory(
            sku="RING-2",
            title="Diamond solitaire ring",
            category=ring,
            metal="yellow_gold",
            gemstone="diamond",
            price=Decimal("3000.00"),
            stock=0,
            photos=[2],
        ),
        "EAR-1": ProductFactory(
            sku="EAR-1",
            title="Pearl drop earrings",
            category=earring,
            metal="silver",
            gemstone="pearl",
            price=Decimal("800.00"),
            photos=[3],
        ),
        "EAR-2.B": ProductFactory(
            sku="EAR-2.B",
            title="Rose gold hoops",
            category=earring,
            metal="rose_gold",
            gemstone="none",
            price=Decimal("1200.00"),
            photos=[4],
        ),
        "GONE-1": ProductFactory(sku="GONE-1", title="Retired ring", category=ring, is_active=False, photos=[5]),
    }
    ids = [p.pk for p in products.values()]
    index_catalog(ids, [image.pk for p in products.values() for image in p.images.all()])
    return products


def photo_base64(seed: int = 1) -> str:
    return base64.b64encode(make_photo(seed)).decode()


def assert_error(response, status: int, code: str) -> dict:
    """The one error shape: {"error": {"code", "message", "details"}}."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]
