from __future__ import annotations

import pytest
from django.core.cache import caches

from catalog.models import ProductImage
from indexing.services import index_catalog
from search.query import QUERY_CACHE, Filters, SearchQuery, _query_cache_key, search
from tests.conftest import make_photo
from tests.factories import ProductFactory

pytestmark = [pytest.mark.django_db, pytest.mark.pgvector_compat]


@pytest.fixture
def indexed_catalog(version, redis_client):
    products = [
        ProductFactory(
            sku="RING-ROSE",
            title="Rose gold oval sapphire ring",
            metal="rose_gold",
            gemstone="sapphire",
            photos=[1, 2, 3, 4, 5, 6],
        ),
        ProductFactory(sku="RING-WHITE", title="White gold diamond ring", metal="white_gold", photos=[11]),
        ProductFactory(sku="STUDS", title="Pearl studs", metal="yellow_gold", gemstone="pearl", photos=[21, 22]),
        *[ProductFactory(photos=[100 + i]) for i in range(12)],
    ]
    index_catalog([p.pk for p in products], list(ProductImage.objects.values_list("pk", flat=True)))
    return products


def test_query_with_a_catalog_photo_returns_its_product_first(demo_catalog):
    products = demo_catalog(30)
    for product in products[::5]:
        photo = product.images.get().image.read()
        response = search(SearchQuery(image=photo, k=5))
        assert response.results[0].product.sku == product.sku
        assert response.results[0].breakdown["similarity"] == pytest.approx(1.0, abs=1e-3)
        assert response.predicted_category[0] == product.category.name
    assert response.model_version.startswith("effnet-lite2-minilm@")


def test_shopper_style_photo_of_a_catalog_product_is_found_in_the_top_10(demo_catalog):
    import io

    import numpy as np
    from PIL import Image

    from ml.training.augment import shopper_view

    products = demo_catalog(30)
    rng = np.random.default_rng(5)
    found = 0
    for product in products:
        view = shopper_view(Image.open(product.images.get().image), rng)
        buffer = io.BytesIO()
        view.save(buffer, format="JPEG", quality=80)
        skus = [r.product.sku for r in search(SearchQuery(image=buffer.getvalue(), k=10)).results]
        found += product.sku in skus
    assert found / len(products) >= 0.9


def test_a_product_with_six_photos_appears_once_scored_by_its_best_photo(indexed_catalog):
    response = search(SearchQuery(image=make_photo(3), k=15))
    skus = [r.product.sku for r in response.results]
    assert len(skus) == len(set(skus)) == 15
    rose = next(r for r in response.results if r.product.sku == "RING-ROSE")
    assert rose.breakdown["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert (
        rose.matched_image.content_hash == ProductImage.objects.get(product__sku="RING-ROSE", position=2).content_hash
    )


def test_every_result_carries_its_score_breakdown(indexed_catalog):
    response = search(SearchQuery(text="rose gold sapphire ring", k=15))
    for result in response.results:
        # fused rank, words found, and a boost per understood part (category, metal, stone)
        assert set(result.breakdown) == {"similarity", "fused", "words", "category", "metal", "gemstone"}
        assert result.reason
    top = response.results[0]
    assert top.product.sku == "RING-ROSE"
    assert top.breakdown["metal"] > 0
    assert top.breakdown["gemstone"] > 0
    assert top.breakdown["words"] > 0


def test_photo_only_results_say_why_in_words_not_percentages(indexed_catalog):
    response = search(SearchQuery(image=make_photo(3), k=5))
    assert all("%" not in r.reason and r.reason.startswith("looks") for r in response.results)


def test_hybrid_query_with_filters_only_returns_matching_products(indexed_catalog):
    response = search(SearchQuery(image=make_photo(1), text="ring", filters=Filters(metal="white_gold"), k=5))
    assert [r.product.sku for r in response.results] == ["RING-WHITE"]


def test_query_embeddings_are_cached_by_content_and_model_version(indexed_catalog):
    photo = make_photo(21)
    response = search(SearchQuery(image=photo, text="studs", k=3))
    assert caches[QUERY_CACHE].get(_query_cache_key(response.model_version, photo, "studs")) is not None
    again = search(SearchQuery(image=photo, text="studs", k=3))
    assert [r.product.pk for r in again.results] == [r.product.pk for r in response.results]
    assert again.timings["encode_ms"] < response.timings["encode_ms"] + 50


def test_image_query_predicts_a_category_and_boosts_it_softly(indexed_catalog):
    response = search(SearchQuery(image=make_photo(21), k=15))
    _name, confidence = response.predicted_category
    assert 0 < confidence <= 1
    # a soft boost, never a filter: products of other categories are still there
    assert len({r.product.category.name for r in response.results}) > 1


def test_more_like_this_excludes_the_product_itself(indexed_catalog):
    rose = indexed_catalog[0]
    response = search(SearchQuery(similar_to=rose.pk, k=5))
    assert rose.pk not in [r.product.pk for r in response.results]
    assert len(response.results) == 5


def test_inactive_products_are_never_returned(indexed_catalog):
    white = indexed_catalog[1]
    white.is_active = False
    white.save()
    response = search(SearchQuery(image=make_photo(11), k=20))
    assert "RING-WHITE" not in [r.product.sku for r in response.results]
