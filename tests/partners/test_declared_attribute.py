"""Adding a searchable attribute is a model field + a migration + one declaration line: a
declaration with one more attribute (over an existing field, `currency`) reaches the
shopper form, the API filters, the product list's FilterSet, the SQL filters, the query
words, the boosts and the embedded product text, with no other code changed."""

from __future__ import annotations

import pytest

from catalog import searchable
from catalog.choices import Currency
from indexing.services import product_text_of
from partners.serializers import SearchJSONSerializer
from search.forms import SearchForm
from search.query import Filters, ranking_weights, text_signals
from tests.factories import ProductFactory
from tests.partners.conftest import PRODUCTS_URL, assert_error


def _currency_in_words(text: str) -> str | None:
    return Currency.USD if "dollar" in text.lower() else None


WITH_CURRENCY = (
    *searchable.ATTRIBUTES,
    searchable.Attribute(
        "currency",
        "Currency",
        searchable.FilterKind.CHOICE,
        Currency,
        in_text=True,
        from_words=_currency_in_words,
        boost=0.05,
    ),
)


@pytest.fixture
def declared(settings):
    settings.CATALOG_SEARCHABLE_ATTRIBUTES = f"{__name__}.WITH_CURRENCY"


def test_a_declared_attribute_is_a_shopper_filter_with_its_choices(declared, db):
    form = SearchForm({"text": "ring", "currency": "USD"})
    assert form.is_valid(), form.errors
    assert "currency" in [field.name for field in form.filter_fields()]
    assert dict(form.fields["currency"].choices)["USD"] == "US dollar"
    assert form.filters().get("currency") == "USD"
    assert not SearchForm({"text": "ring", "currency": "XYZ"}).is_valid()


def test_a_declared_attribute_is_an_api_search_filter(declared, db):
    params = SearchJSONSerializer(data={"text": "ring", "currency": "USD"})
    assert params.is_valid(), params.errors
    assert params.to_search_query().filters.get("currency") == "USD"
    assert "currency" in SearchJSONSerializer(data={"text": "ring", "currency": "XYZ"}).fields
    assert not SearchJSONSerializer(data={"text": "ring", "currency": "XYZ"}).is_valid()


def test_a_declared_attribute_filters_sql_and_the_product_list(declared, api_client):
    ProductFactory(sku="USD-1", currency=Currency.USD)
    ProductFactory(sku="INR-1", currency=Currency.INR)
    where, params = Filters(currency="USD").sql()
    assert "p.currency = %s" in where
    assert params == ["USD"]
    response = api_client.get(PRODUCTS_URL, {"currency": "USD"})
    assert [p["sku"] for p in response.json()["results"]] == ["USD-1"]
    assert_error(api_client.get(PRODUCTS_URL, {"currency": "XYZ"}), 400, "validation_error")


def test_a_declared_attribute_is_in_the_words_the_boosts_and_the_product_text(declared, db):
    assert text_signals("gold ring priced in dollars")["currency"] == {"USD": 1.0}
    assert ranking_weights()["currency"] == 0.05
    product = ProductFactory(currency=Currency.USD)
    assert "Currency: us dollar" in product_text_of(product)
    product.embedding_dirty = False
    product.save()
    product.currency = Currency.EUR  # part of the text now: its embedding is stale
    product.save()
    assert product.embedding_dirty


def test_without_the_declaration_line_the_attribute_is_nowhere(db):
    assert "currency" not in SearchForm().fields
    with pytest.raises(TypeError, match="unknown filters"):
        Filters(currency="USD")
    assert "currency" not in text_signals("gold ring priced in dollars")
