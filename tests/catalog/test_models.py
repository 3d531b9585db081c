from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from catalog.choices import gemstone_from_text, metal_from_text
from catalog.models import Product, ProductImage
from catalog.services import ProductData, parse_price, upsert_product
from catalog.uploads import UploadError
from tests.conftest import make_photo
from tests.factories import ProductFactory, add_product_image_bytes

pytestmark = pytest.mark.django_db


def test_first_migration_created_the_vector_extension():
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        assert cursor.fetchone() is not None


def test_same_photo_uploaded_twice_is_stored_once():
    product = ProductFactory()
    first, created_first = add_product_image_bytes(product, make_photo(1))
    second, created_second = add_product_image_bytes(product, make_photo(1))
    _third, _ = add_product_image_bytes(product, make_photo(2))
    assert created_first
    assert not created_second
    assert first.pk == second.pk
    assert [image.position for image in product.images.all()] == [0, 1]
    assert (first.width, first.height) == (320, 320)
    assert len(first.content_hash) == 64
    assert "products/" in first.image.name
    assert first.content_hash in first.image.name


def test_truncated_photo_is_refused_and_nothing_is_stored():
    product = ProductFactory()
    with pytest.raises(UploadError) as refused:
        add_product_image_bytes(product, make_photo(3)[:200])
    assert refused.value.status == 400
    assert ProductImage.objects.count() == 0


def test_price_or_stock_change_does_not_mark_the_text_side_for_reembedding():
    product = ProductFactory()
    Product.objects.filter(pk=product.pk).update(embedding_dirty=False)
    product = Product.objects.get(pk=product.pk)
    product.price = Decimal("5.00")
    product.stock = 0
    product.save()
    product.refresh_from_db()
    assert not product.embedding_dirty
    product.title = "Renamed"
    product.save()
    product.refresh_from_db()
    assert product.embedding_dirty


def test_upsert_by_sku_reports_created_updated_unchanged():
    data = ProductData(
        sku="A-1",
        title="Ring",
        description="",
        category="Ring",
        metal_text="gold",
        gemstone_text="ruby",
        price=Decimal("10"),
    )
    assert upsert_product(data)[1] == "created"
    assert upsert_product(data)[1] == "unchanged"
    assert upsert_product(ProductData(**{**data.__dict__, "price": Decimal("11")}))[1] == "updated"


@pytest.mark.parametrize(
    ("metal", "colour", "expected"),
    [
        ("18K Gold", "rose", "rose_gold"),
        ("white gold", "", "white_gold"),
        ("22K Gold", "", "yellow_gold"),
        ("Platinum", "white", "platinum"),
        ("925 Sterling", "", "silver"),
        ("mixed", "two tone", "two_tone_gold"),
        ("titanium", "", "other"),
    ],
)
def test_free_text_metal_maps_onto_choices(metal, colour, expected):
    assert metal_from_text(metal, colour) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Oval blue Sapphire", "sapphire"),
        ("CZ", "cubic_zirconia"),
        ("", "none"),
        ("rubies", "ruby"),
        ("tourmaline", "other"),
        ("solitaire", "diamond"),
    ],
)
def test_free_text_gemstone_maps_onto_choices(text, expected):
    assert gemstone_from_text(text) == expected


@pytest.mark.parametrize(
    ("text", "price", "currency"),
    [
        ("1,299.50", Decimal("1299.50"), None),
        ("INR 450", Decimal("450.00"), "INR"),
        ("12 EUR", Decimal("12.00"), "EUR"),
        ("₹37,555", Decimal("37555.00"), "INR"),
        ("$1,200.00", Decimal("1200.00"), "USD"),
        ("13.144.000 ₫", Decimal("13144000.00"), "VND"),
        ("31052000 VND", Decimal("31052000.00"), "VND"),
        ("37555 INR", Decimal("37555.00"), "INR"),
        ("1.299,50 €", Decimal("1299.50"), "EUR"),
        ("1 299,50 €", Decimal("1299.50"), "EUR"),
        ("649.000đ", Decimal("649000.00"), "VND"),
        ("Rs. 1,23,456/-", Decimal("123456.00"), "INR"),
        ("12,5", Decimal("12.50"), None),
        ("0.500", Decimal("0.50"), None),
        ("£ 99", Decimal("99.00"), "GBP"),
    ],
)
def test_prices_written_with_a_currency_or_separators_parse(text, price, currency):
    assert parse_price(text) == (price, currency)


@pytest.mark.parametrize("text", ["", "  ", "Price on request", "on request", "POA"])
def test_no_price_means_price_on_request(text):
    assert parse_price(text) == (None, None)


def test_a_bare_dollar_is_the_shops_own_dollar():
    assert parse_price("$1,200", shop_currency="AUD") == (Decimal("1200.00"), "AUD")
    assert parse_price("$1,200", shop_currency="INR") == (Decimal("1200.00"), "USD")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("cheap", "not a number"),
        ("-5", "zero or more"),
        ("NaN", "not a number"),
        ("1e20", "not a number"),
        ("1,2,3", "digit groups"),
        ("1.2345", "more than two decimals"),
        ("€12 USD", "two currencies"),
        ("100 CHF", "CHF is not a currency"),
        ("12345678901", "too large"),
    ],
)
def test_bad_prices_are_refused_with_a_reason(text, reason):
    with pytest.raises(ValueError, match=reason):
        parse_price(text)
