"""GET /api/v1/products/, /products/{sku}/, /products/{sku}/similar/, /categories/: active products only."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection

from catalog.models import Product
from tests.partners.conftest import CATEGORIES_URL, PRODUCTS_URL, assert_error

pytestmark = pytest.mark.django_db


def test_product_list_shows_only_active_products_in_sku_order(api_client, catalog):
    response = api_client.get(PRODUCTS_URL)
    assert response.status_code == 200
    body = response.json()
    assert [p["sku"] for p in body["results"]] == ["EAR-1", "EAR-2.B", "RING-1", "RING-2"]
    assert body["next"] is None
    assert body["previous"] is None
    ring = body["results"][2]
    assert ring == {
        "sku": "RING-1",
        "title": "Oval sapphire ring",
        "description": "A piece of jewelry.",
        "category": "ring",
        "category_name": "Ring",
        "metal": "white_gold",
        "gemstone": "sapphire",
        "price": "1500.00",
        "currency": "INR",
        "in_stock": True,
        "image_url": ring["images"][0]["url"],
        "images": [{"url": ring["image_url"], "width": 320, "height": 320}],
        "url": "http://testserver/products/RING-1/",
    }
    assert ring["image_url"].startswith("http://testserver/media/products/")


def test_product_list_pages_with_a_cursor(api_client, catalog):
    first = api_client.get(PRODUCTS_URL, {"page_size": 3}).json()
    assert [p["sku"] for p in first["results"]] == ["EAR-1", "EAR-2.B", "RING-1"]
    second = api_client.get(first["next"]).json()
    assert [p["sku"] for p in second["results"]] == ["RING-2"]
    assert second["next"] is None
    assert second["previous"]


def test_product_list_with_a_mangled_cursor_returns_400(api_client, catalog):
    error = assert_error(api_client.get(PRODUCTS_URL, {"cursor": "garbage"}), 400, "validation_error")
    assert "cursor" in error["details"]


@pytest.mark.parametrize(
    ("params", "skus"),
    [
        ({"category": "ring"}, ["RING-1", "RING-2"]),
        ({"metal": "silver"}, ["EAR-1"]),
        ({"gemstone": "none"}, ["EAR-2.B"]),
        ({"price_min": "1000", "price_max": "1500"}, ["EAR-2.B", "RING-1"]),
        ({"in_stock": "true", "category": "ring"}, ["RING-1"]),
        ({"in_stock": "false", "category": "ring"}, ["RING-1", "RING-2"]),
    ],
)
def test_product_list_filters(api_client, catalog, params, skus):
    response = api_client.get(PRODUCTS_URL, params)
    assert response.status_code == 200
    assert [p["sku"] for p in response.json()["results"]] == skus


@pytest.mark.parametrize(
    ("params", "bad"),
    [
        ({"category": "bracelets"}, "category"),
        ({"metal": "tin"}, "metal"),
        ({"price_max": "cheap"}, "price_max"),
        ({"price_min": "10", "price_max": "5"}, "price_min"),
        ({"in_stock": "maybe"}, "in_stock"),
    ],
)
def test_product_list_with_invalid_filter_returns_400(api_client, catalog, params, bad):
    error = assert_error(api_client.get(PRODUCTS_URL, params), 400, "validation_error")
    assert bad in error["details"]


def test_product_detail_by_sku_including_dots(api_client, catalog):
    response = api_client.get(f"{PRODUCTS_URL}EAR-2.B/")
    assert response.status_code == 200
    assert response.json()["title"] == "Rose gold hoops"


def test_product_detail_of_unknown_sku_returns_404(api_client, catalog):
    error = assert_error(api_client.get(f"{PRODUCTS_URL}NOPE-9/"), 404, "not_found")
    assert "NOPE-9" in error["message"]


def test_product_detail_of_inactive_product_returns_404(api_client, catalog):
    assert_error(api_client.get(f"{PRODUCTS_URL}GONE-1/"), 404, "not_found")
    assert_error(api_client.get(f"{PRODUCTS_URL}GONE-1/similar/"), 404, "not_found")


def test_similar_products_exclude_the_product_and_inactive_ones(api_client, catalog):
    response = api_client.get(f"{PRODUCTS_URL}RING-1/similar/", {"k": 10})
    assert response.status_code == 200
    body = response.json()
    skus = [r["sku"] for r in body["results"]]
    assert sorted(skus) == ["EAR-1", "EAR-2.B", "RING-2"]
    assert body["results"][0]["url"].startswith("http://testserver/products/")


def test_similar_products_honour_k(api_client, catalog):
    response = api_client.get(f"{PRODUCTS_URL}RING-1/similar/", {"k": 1})
    assert len(response.json()["results"]) == 1


@pytest.mark.parametrize("k", ["0", "101", "two"])
def test_similar_products_with_invalid_k_returns_400(api_client, catalog, k):
    error = assert_error(api_client.get(f"{PRODUCTS_URL}RING-1/similar/", {"k": k}), 400, "validation_error")
    assert "k" in error["details"]


def test_similar_products_of_unknown_sku_returns_404(api_client, catalog):
    assert_error(api_client.get(f"{PRODUCTS_URL}NOPE/similar/"), 404, "not_found")


def test_categories_list_counts_active_products(api_client, catalog):
    response = api_client.get(CATEGORIES_URL)
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"slug": "earring", "name": "Earring", "product_count": 2},
        {"slug": "ring", "name": "Ring", "product_count": 2},
    ]


def test_catalog_read_with_database_down_returns_503_with_retry_after(api_client, catalog):
    with connection.execute_wrapper(_database_down):
        response = api_client.get(PRODUCTS_URL)
    assert_error(response, 503, "database_unavailable")
    assert response["Retry-After"] == "5"


def test_unknown_api_path_returns_json_404(api_client):
    assert_error(api_client.get("/api/v1/orders/"), 404, "not_found")
    assert_error(api_client.get("/api/v1/products/RING-1/reviews/"), 404, "not_found")


def test_catalog_is_read_only(api_client, catalog):
    assert_error(api_client.post(PRODUCTS_URL, {"sku": "NEW"}, format="json"), 405, "method_not_allowed")
    assert_error(api_client.delete(f"{PRODUCTS_URL}RING-1/"), 405, "method_not_allowed")
    assert Product.objects.filter(sku="RING-1", is_active=True).exists()


def _database_down(execute, sql, params, many, context):
    raise OperationalError("the database system is shutting down")


def test_a_product_with_no_price_answers_null_and_price_filters_leave_it_out(api_client, catalog):
    from indexing.services import index_catalog
    from tests.factories import ProductFactory

    tiara = ProductFactory(sku="RING-POR", title="Sapphire tiara ring", category=catalog["RING-1"].category, photos=[6])
    tiara.price = None
    tiara.save()
    index_catalog([tiara.pk], [image.pk for image in tiara.images.all()])
    listed = {p["sku"]: p for p in api_client.get(PRODUCTS_URL).json()["results"]}
    assert listed["RING-POR"]["price"] is None
    assert api_client.get(f"{PRODUCTS_URL}RING-POR/").json()["price"] is None
    for params in ({"price_min": "0"}, {"price_max": "1000000"}):
        skus = [p["sku"] for p in api_client.get(PRODUCTS_URL, params).json()["results"]]
        assert "RING-POR" not in skus
        assert "RING-1" in skus
    found = api_client.post("/api/v1/search/", {"text": "sapphire ring", "k": 10}, format="json").json()["results"]
    assert {r["sku"]: r["price"] for r in found}["RING-POR"] is None
    filtered = api_client.post(
        "/api/v1/search/", {"text": "sapphire ring", "price_min": "0", "k": 10}, format="json"
    ).json()["results"]
    assert "RING-POR" not in [r["sku"] for r in filtered]
    assert "RING-1" in [r["sku"] for r in filtered]
