"""A product without a price ("Price on request"): the admin, the shop page and its cards."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string

from catalog.models import Product
from search.query import SearchResult
from tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db


def _product_form(product: Product, **changes) -> dict:
    form = {
        "sku": product.sku,
        "title": product.title,
        "description": "",
        "category": product.category_id,
        "metal": "yellow_gold",
        "metal_text": "",
        "gemstone": "diamond",
        "gemstone_text": "",
        "price": "10",
        "currency": "INR",
        "stock": 1,
        "is_active": "on",
        "images-TOTAL_FORMS": 0,
        "images-INITIAL_FORMS": 0,
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
    }
    return {**form, **changes}


def test_admin_saves_a_product_with_an_empty_price_and_lists_it_as_price_on_request(admin_client):
    product = ProductFactory(sku="TIARA-1")
    response = admin_client.post(f"/admin/catalog/product/{product.pk}/change/", _product_form(product, price=""))
    assert response.status_code == 302, response.content.decode()[:2000]
    product.refresh_from_db()
    assert product.price is None
    html = admin_client.get("/admin/catalog/product/").content.decode()
    assert "Price on request" in html


def test_admin_adds_a_product_in_the_shops_currency(admin_client, settings):
    settings.SHOP_CURRENCY = "VND"
    html = admin_client.get("/admin/catalog/product/add/").content.decode()
    assert '<option value="VND" selected>' in html
    assert Product(sku="X").currency == "VND"


def test_product_page_and_card_say_price_on_request(client):
    product = ProductFactory(sku="TIARA-1", price=None, photos=[1])
    html = client.get(product.get_absolute_url()).content.decode()
    assert "Price on request" in html
    assert "None" not in html.split('class="price"', 1)[1][:60]
    card = render_to_string(
        "search/_card.html",
        {"result": SearchResult(product, 0.5, {}, product.primary_image, "same metal")},
    )
    assert '<span class="price">Price on request</span>' in card
    priced = ProductFactory(sku="RING-9", category=CategoryFactory(name="Ring", slug="ring"), photos=[2])
    card = render_to_string("search/_card.html", {"result": SearchResult(priced, 0.5, {}, None, "")})
    assert '<span class="price">INR 1,000</span>' in card


def test_a_minimum_price_of_zero_is_a_filter_that_leaves_price_on_request_out():
    from decimal import Decimal

    from search.query import Filters

    where, params = Filters(price_min=Decimal(0)).sql()
    assert "price >= %s" in where
    assert params == [Decimal(0)]
