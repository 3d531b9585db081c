"""POST /api/v1/search/: photo (multipart or base64), words, filters; every failure in one shape."""

from __future__ import annotations

import json

import pytest
from django.db import OperationalError, connection

from catalog.models import Product
from indexing.models import ModelVersion
from search.query import Filters, SearchQuery, search
from tests.conftest import make_photo
from tests.partners.conftest import SEARCH_URL, assert_error, photo_base64

pytestmark = pytest.mark.django_db


def test_search_by_uploaded_photo_answers_ranked_products_with_absolute_urls(api_client, catalog):
    response = api_client.post(SEARCH_URL, {"image": _upload(make_photo(1)), "k": 3}, format="multipart")
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {
        "model_version",
        "took_ms",
        "strategy",
        "matched",
        "searched_for",
        "understood",
        "facets",
        "total_matching",
        "predicted_category",
        "results",
    }
    assert body["matched"] is True
    assert body["understood"] == {}  # a photo has no words to read
    assert body["model_version"].startswith("tiny-test")
    assert len(body["results"]) == 3
    best = body["results"][0]
    assert best["sku"] == "RING-1"  # the very photo of RING-1
    assert set(best) >= {
        "sku",
        "title",
        "category",
        "metal",
        "gemstone",
        "price",
        "currency",
        "score",
        "score_breakdown",
        "image_url",
        "url",
    }
    assert best["category"] == "ring"
    assert best["metal"] == "white_gold"
    assert best["price"] == "1500.00"
    assert best["image_url"].startswith("http://testserver/media/products/")
    assert best["url"] == "http://testserver/products/RING-1/"
    assert body["predicted_category"]["name"] in {"Ring", "Earring"}
    assert 0 < body["predicted_category"]["confidence"] <= 1
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)


def test_search_by_base64_photo_in_json_equals_multipart_upload(api_client, catalog):
    as_json = api_client.post(SEARCH_URL, {"image_base64": photo_base64(3), "k": 4}, format="json").json()
    as_file = api_client.post(SEARCH_URL, {"image": _upload(make_photo(3)), "k": 4}, format="multipart").json()
    assert [r["sku"] for r in as_json["results"]] == [r["sku"] for r in as_file["results"]]
    assert as_json["results"][0]["sku"] == "EAR-1"


def test_search_accepts_a_data_url_as_base64(api_client, catalog):
    response = api_client.post(SEARCH_URL, {"image_base64": "data:image/jpeg;base64," + photo_base64(2)}, format="json")
    assert response.status_code == 200
    assert response.json()["results"][0]["sku"] == "RING-2"


def test_search_answers_what_the_shop_search_service_answers(api_client, catalog):
    response = api_client.post(SEARCH_URL, {"text": "sapphire ring", "metal": "white_gold", "k": 5}, format="json")
    assert response.status_code == 200
    service = search(SearchQuery(text="sapphire ring", filters=Filters(metal="white_gold"), k=5))
    assert [r["sku"] for r in response.json()["results"]] == [r.product.sku for r in service.results]
    assert response.json()["predicted_category"] is None  # predicted from photos only


def test_search_filters_never_leak_non_matching_or_inactive_products(api_client, catalog):
    response = api_client.post(
        SEARCH_URL,
        {"text": "ring", "category": "ring", "in_stock": True, "price_min": "1000", "price_max": "2000", "k": 10},
        format="json",
    )
    assert response.status_code == 200
    assert [r["sku"] for r in response.json()["results"]] == ["RING-1"]
    response = api_client.post(SEARCH_URL, {"image": _upload(make_photo(5)), "k": 10}, format="multipart")
    assert "GONE-1" not in [r["sku"] for r in response.json()["results"]]


def test_search_with_photo_and_words_is_hybrid_and_honours_k(api_client, catalog):
    response = api_client.post(
        SEARCH_URL, {"image": _upload(make_photo(4)), "text": "rose gold hoops", "k": 2}, format="multipart"
    )
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


def test_search_without_photo_or_text_returns_400(api_client, catalog):
    error = assert_error(api_client.post(SEARCH_URL, {"k": 5}, format="json"), 400, "validation_error")
    assert "image_base64" in error["message"]
    assert "text" in error["message"]
    assert_error(api_client.post(SEARCH_URL, {"text": "   "}, format="json"), 400, "validation_error")
    assert_error(api_client.post(SEARCH_URL, {}, format="multipart"), 400, "validation_error")


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"k": 0}, "k"),
        ({"k": 101}, "k"),
        ({"k": "many"}, "k"),
        ({"metal": "bronze"}, "metal"),
        ({"gemstone": "glass"}, "gemstone"),
        ({"category": "no-such-category"}, "category"),
        ({"category": "not a slug!"}, "category"),
        ({"price_min": "-1"}, "price_min"),
        ({"price_min": "abc"}, "price_min"),
        ({"price_min": "500", "price_max": "100"}, "price_min"),
        ({"in_stock": "perhaps"}, "in_stock"),
        ({"text": "x" * 301}, "text"),
        ({"text": "ring\x00"}, "text"),
    ],
)
def test_search_with_invalid_field_returns_400_naming_the_field(api_client, catalog, fields, bad):
    error = assert_error(
        api_client.post(SEARCH_URL, {"text": "ring", **fields}, format="json"), 400, "validation_error"
    )
    assert bad in error["details"]


def test_search_with_lone_surrogate_in_text_returns_400(api_client, catalog):
    body = '{"text": "ring \\ud800"}'
    response = api_client.post(SEARCH_URL, body, content_type="application/json")
    assert_error(response, 400, "validation_error")


def test_search_with_malformed_json_returns_400(api_client, catalog):
    response = api_client.post(SEARCH_URL, '{"text": "ring",', content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_search_with_json_that_is_not_an_object_returns_400(api_client, catalog):
    response = api_client.post(SEARCH_URL, json.dumps(["ring"]), content_type="application/json")
    assert_error(response, 400, "validation_error")


def test_search_with_bad_base64_returns_400(api_client, catalog):
    error = assert_error(
        api_client.post(SEARCH_URL, {"image_base64": "not base64 at all!"}, format="json"), 400, "invalid_base64"
    )
    assert error["details"] == {"field": "image_base64"}


def test_upload_of_truncated_jpeg_returns_400_and_keeps_catalog(api_client, catalog):
    before = (Product.objects.count(), Product.objects.order_by("pk").values_list("updated_at", flat=True)[0])
    truncated = make_photo(1)[:2000]
    error = assert_error(
        api_client.post(SEARCH_URL, {"image": _upload(truncated)}, format="multipart"), 400, "corrupt_image"
    )
    assert error["details"] == {"field": "image"}
    assert_error(api_client.post(SEARCH_URL, {"image_base64": _b64(truncated)}, format="json"), 400, "corrupt_image")
    assert (Product.objects.count(), Product.objects.order_by("pk").values_list("updated_at", flat=True)[0]) == before


def test_search_with_empty_file_returns_400(api_client, catalog):
    assert_error(api_client.post(SEARCH_URL, {"image": _upload(b"")}, format="multipart"), 400, "empty_file")


def test_search_with_a_pdf_instead_of_a_photo_returns_415(api_client, catalog):
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"
    error = assert_error(
        api_client.post(SEARCH_URL, {"image": _upload(pdf, "photo.jpg")}, format="multipart"),
        415,
        "unsupported_media_type",
    )
    assert "PDF" in error["message"]
    assert_error(api_client.post(SEARCH_URL, {"image_base64": _b64(pdf)}, format="json"), 415, "unsupported_media_type")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_search_with_a_content_type_it_does_not_accept_returns_415(api_client, catalog, content_type):
    response = api_client.post(SEARCH_URL, "text=ring", content_type=content_type)
    assert_error(response, 415, "unsupported_media_type")


def test_search_with_photo_over_the_size_limit_returns_413(api_client, catalog, settings):
    photo = make_photo(1, size=(400, 400), fmt="PNG")
    settings.MAX_UPLOAD_BYTES = len(photo) - 1
    error = assert_error(
        api_client.post(SEARCH_URL, {"image": _upload(photo)}, format="multipart"), 413, "file_too_large"
    )
    assert error["details"] == {"field": "image"}
    assert_error(api_client.post(SEARCH_URL, {"image_base64": _b64(photo)}, format="json"), 413, "file_too_large")


def test_search_with_a_body_far_over_the_limit_is_refused_before_reading_it(api_client, catalog, settings):
    settings.MAX_UPLOAD_BYTES = 10_000
    big = b"\xff\xd8\xff" + b"\x00" * 200_000
    error = assert_error(
        api_client.post(SEARCH_URL, {"image": _upload(big)}, format="multipart"), 413, "request_too_large"
    )
    assert error["details"]["limit_bytes"] < 200_000
    assert_error(api_client.post(SEARCH_URL, {"image_base64": _b64(big)}, format="json"), 413, "request_too_large")


def test_search_before_anything_is_indexed_returns_503_with_retry_after(api_client, db):
    ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).update(state=ModelVersion.State.RETIRED)
    response = api_client.post(SEARCH_URL, {"text": "ring"}, format="json")
    assert_error(response, 503, "search_unavailable")
    assert int(response["Retry-After"]) > 0


def test_search_with_database_down_returns_503_with_retry_after(api_client, catalog):
    with connection.execute_wrapper(_database_down):
        response = api_client.post(SEARCH_URL, {"text": "ring"}, format="json")
    assert_error(response, 503, "database_unavailable")
    assert response["Retry-After"] == "5"


def test_search_with_get_returns_405_in_the_error_shape(api_client, catalog):
    assert_error(api_client.get(SEARCH_URL), 405, "method_not_allowed")


def _database_down(execute, sql, params, many, context):
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")


def _upload(data: bytes, name: str = "query.jpg"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="image/jpeg")


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_search_says_what_it_understood_and_counts_facets(api_client, catalog):
    response = api_client.post(SEARCH_URL, {"text": "white gold saphire ring", "k": 5}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["understood"] == {"category": "ring", "metal": "gold", "metal_color": "white", "gemstone": "sapphire"}
    assert body["searched_for"] == "white gold sapphire ring"
    assert body["matched"] is True
    assert body["results"][0]["sku"] == "RING-1"
    counts = {item["value"]: item["count"] for item in body["facets"]["category"]}
    for slug, count in counts.items():
        narrowed = api_client.post(
            SEARCH_URL, {"text": "white gold saphire ring", "category": slug, "k": 100}, format="json"
        ).json()
        assert len(narrowed["results"]) == count


def test_search_for_something_the_shop_does_not_sell_answers_matched_false(api_client, catalog, settings):
    settings.SEARCH_MATCH_MIN_SIMILARITY = 0.99  # calibrated for the served model, not the tiny one
    body = api_client.post(SEARCH_URL, {"text": "laptop", "k": 5}, format="json").json()
    assert body["matched"] is False
    assert body["results"] == []
