"""Full text, typo correction, synonyms, facets and honest answers, on real PostgreSQL.

Marked `pgvector_compat`: they run on the machine's PostgreSQL 15 (with unaccent and
pg_trgm) and on the embedded PostgreSQL 16 (which ships neither: search_unaccent's
translate() fallback and the Python-ranked typo candidates)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection, transaction

from catalog.models import Category, Product, ProductImage
from indexing.services import index_catalog
from search.models import Synonym
from search.query import Filters, SearchQuery, search
from tests.factories import CategoryFactory, ProductFactory

pytestmark = [pytest.mark.django_db, pytest.mark.pgvector_compat]


def _document_matches(product: Product, words: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT document @@ websearch_to_tsquery('english', search_unaccent(%s)) "
            "FROM search_productdocument WHERE product_id = %s",
            [words, product.pk],
        )
        row = cursor.fetchone()
    return bool(row and row[0])


@pytest.fixture
def shop(version, redis_client):
    """Twelve yellow gold necklaces, four of them with a sapphire, rings, studs, a bangle."""
    necklace, ring = CategoryFactory(name="Necklace", slug="necklace"), CategoryFactory(name="Ring", slug="ring")
    earring, bangle = CategoryFactory(name="Earring", slug="earring"), CategoryFactory(name="Bangle", slug="bangle")
    products = [
        *[
            ProductFactory(
                sku=f"NECK-SAPH-{i}",
                title="Yellow gold necklace with round sapphire",
                category=necklace,
                gemstone="sapphire",
                price=Decimal(4000 + i),
                photos=[i],
            )
            for i in range(4)
        ],
        *[
            ProductFactory(
                sku=f"NECK-{i}",
                title=f"Yellow gold necklace {i}",
                category=necklace,
                gemstone="none",
                price=Decimal(900 + i),
                photos=[10 + i],
            )
            for i in range(8)
        ],
        ProductFactory(
            sku="RING-WG", title="White gold round diamond ring", category=ring, metal="white_gold", photos=[30]
        ),
        ProductFactory(
            sku="RING-WM", title="White metal ring with round diamond", category=ring, metal="other", photos=[31]
        ),
        ProductFactory(
            sku="RING-RG", title="Rose gold solitaire", category=ring, metal="rose_gold", stock=0, photos=[32]
        ),
        ProductFactory(sku="STUD-1", title="Diamond stud earrings", category=earring, photos=[33]),
        ProductFactory(sku="KADA-1", title="Nhẫn Vàng kada", category=bangle, gemstone="none", photos=[34]),
    ]
    index_catalog([p.pk for p in products], list(ProductImage.objects.values_list("pk", flat=True)))
    return products


def test_document_follows_a_product_edit_inside_the_same_transaction(shop):
    product = Product.objects.get(sku="NECK-0")
    with transaction.atomic():
        product.title = "Celtic torc"
        product.save()
        assert _document_matches(product, "torc")  # before the commit, in the same transaction
        assert not _document_matches(product, "necklace 0")
        transaction.set_rollback(True)
    product.refresh_from_db()
    assert _document_matches(product, "yellow gold necklace")


def test_document_follows_a_category_rename_and_a_delete(shop):
    Category.objects.filter(slug="bangle").update(name="Kangan")
    kada = Product.objects.get(sku="KADA-1")
    assert _document_matches(kada, "kangan")
    kada_id = kada.pk
    kada.delete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM search_productdocument WHERE product_id = %s", [kada_id])
        assert cursor.fetchone()[0] == 0


def test_accents_are_folded_on_both_sides(shop):
    kada = Product.objects.get(sku="KADA-1")
    assert _document_matches(kada, "nhan vang")
    assert _document_matches(kada, "Nhẫn")


def test_exact_attribute_matches_come_first_not_the_crowd_that_shares_most_words(shop):
    response = search(SearchQuery(text="yellow gold necklace with sapphire", k=10))
    assert {r.product.sku for r in response.results[:4]} == {f"NECK-SAPH-{i}" for i in range(4)}
    assert response.understood.as_dict() == {
        "category": "necklace",
        "metal": "gold",
        "metal_color": "yellow",
        "gemstone": "sapphire",
    }
    assert "title has: sapphire" in response.results[0].reason
    assert "%" not in response.results[0].reason


def test_white_gold_round_diamond_ring_ranks_the_white_gold_ring_above_white_metal(shop):
    skus = [r.product.sku for r in search(SearchQuery(text="white gold round diamond ring", k=5)).results]
    assert skus.index("RING-WG") < skus.index("RING-WM")


@pytest.mark.parametrize(("typed", "meant"), [("saphire", "sapphire"), ("diamnd", "diamond"), ("neckalce", "necklace")])
def test_a_typo_is_corrected_to_a_word_of_the_catalogue(shop, typed, meant):
    response = search(SearchQuery(text=f"gold {typed}", k=5))
    assert response.understood.corrections == {typed: meant}
    assert response.corrected_text == f"gold {meant}"
    assert response.matched


def test_a_correctly_spelled_query_is_left_alone(shop):
    assert search(SearchQuery(text="diamond stud earrings", k=3)).corrected_text is None


def test_a_synonym_added_in_the_admin_applies_to_the_next_search(shop, admin_client):
    before = search(SearchQuery(text="tikka", k=5))
    assert before.understood.category is None
    response = admin_client.post(
        "/admin/search/synonym/add/", {"phrase": "Tikka", "means": "necklace", "is_active": "on"}
    )
    assert response.status_code == 302, response.content
    after = search(SearchQuery(text="tikka", k=5))
    assert after.understood.category == "necklace"
    assert after.results
    assert all(r.product.category.slug == "necklace" for r in after.results[:5])
    Synonym.objects.filter(phrase="tikka").update(is_active=False)
    assert search(SearchQuery(text="tikka", k=5)).understood.category is None


def test_laptop_matches_nothing_and_says_so(shop, settings):
    # The threshold is calibrated for the served model; the tiny test model's cosines mean nothing.
    settings.SEARCH_MATCH_MIN_SIMILARITY = 0.99
    response = search(SearchQuery(text="laptop", k=10))
    assert response.matched is False
    assert response.results == []
    assert search(SearchQuery(text="ring", k=10)).matched is True


@pytest.mark.parametrize(
    "text",
    [
        "ring'",
        "gold & ring",
        "ring | necklace",
        "!diamond",
        "ring:*",
        "(ring",
        "'); DROP TABLE catalog_product; --",
        "\\",
        '"unterminated',
        "<->",
        "a:A & b",
    ],
)
def test_query_syntax_characters_are_harmless(shop, text):
    response = search(SearchQuery(text=text, k=5))
    assert isinstance(response.matched, bool)
    assert Product.objects.count() == len(shop)


def test_facet_counts_equal_what_selecting_them_returns(shop):
    text = "gold necklace"
    response = search(SearchQuery(text=text, k=100))
    assert response.total_matching == len(response.results)
    checked = 0
    for name, values in response.facets.items():
        for item in values:
            if name == "price":
                params = {"price_min": item["price_min"], "price_max": item["price_max"]}
                params = {k: Decimal(v) for k, v in params.items() if v is not None}
            elif name == "in_stock":
                params = {"in_stock": True}
            else:
                params = {name: item["value"]}
            selected = search(SearchQuery(text=text, filters=Filters(**params), k=100))
            assert len(selected.results) == item["count"] == selected.total_matching, (name, item)
            checked += 1
    assert checked >= 6


def test_facet_counts_stay_right_with_a_filter_applied(shop):
    response = search(SearchQuery(text="gold", filters=Filters(category="ring"), k=100))
    metal_counts = {item["value"]: item["count"] for item in response.facets["metal"]}
    for metal, count in metal_counts.items():
        both = search(SearchQuery(text="gold", filters=Filters(category="ring", metal=metal), k=100))
        assert len(both.results) == count
    # the category facet ignores the category filter itself: another category can be chosen
    assert {item["value"] for item in response.facets["category"]} >= {"ring", "necklace"}


def test_filters_apply_to_both_sides_and_still_return_k_when_k_match(shop):
    response = search(SearchQuery(text="gold", filters=Filters(category="necklace"), k=10))
    assert response.total_matching == 12
    assert len(response.results) == 10
    assert all(r.product.category.slug == "necklace" for r in response.results)
    assert "fulltext" in response.strategy


def test_laptop_matches_nothing_with_the_served_model(demo_catalog):
    demo_catalog(12)
    response = search(SearchQuery(text="laptop", k=10))
    assert response.matched is False
    assert response.results == []
    assert search(SearchQuery(text="gold ring", k=10)).matched is True
