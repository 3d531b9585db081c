"""No stored or requested value breaks a page: product addresses accept only valid SKUs,
building one never raises, and control characters in a path or query never reach a view
or the database (the probe had `/products/%00/` as a 500 and a SKU with `/` taking down
every page that listed it)."""

from __future__ import annotations

import pytest
from django.urls import NoReverseMatch, reverse

from catalog.models import Product
from tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db

ODD_BUT_VALID = ["Ring-18K.v2_final", ".hidden", "..a", "a..b", "x"]


@pytest.fixture
def indexed(version):
    from indexing.services import index_catalog

    ring = CategoryFactory(name="Ring", slug="ring")
    products = [
        ProductFactory(sku=sku, title=f"Gold ring {i}", category=ring, photos=[i + 1])
        for i, sku in enumerate(ODD_BUT_VALID)
    ]
    index_catalog([p.pk for p in products], [i.pk for p in products for i in p.images.all()])
    return products


def test_product_pages_of_valid_odd_skus_open_and_list_similar_pieces(client, indexed):
    for product in indexed:
        url = product.get_absolute_url()
        assert url == f"/products/{product.sku}/"
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert product.title in page
        others = [p for p in indexed if p != product]
        assert any(f'href="{p.get_absolute_url()}"' in page for p in others)  # "similar pieces" link out


def test_search_page_links_every_result_to_its_product_page(client, indexed):
    response = client.get("/", {"text": "gold ring"})
    assert response.status_code == 200
    page = response.content.decode()
    for product in indexed:
        assert f'href="/products/{product.sku}/"' in page
    similar = client.get("/", {"similar": ".hidden"})
    assert similar.status_code == 200
    assert 'href="/products/.hidden/"' in similar.content.decode()


def test_building_the_address_of_a_bad_sku_never_raises():
    category = CategoryFactory()
    for sku in ["a/b", "..", ".", "x y", "a\x00b", ""]:
        product = Product(sku=sku, title="t", category=category, price=1)
        with pytest.raises(NoReverseMatch):
            reverse("search:product", args=[sku])
        url = product.get_absolute_url()
        assert url.startswith("/products/")
        assert "/" not in url[len("/products/") : -1]


def test_escaped_address_of_a_bad_sku_is_a_404_not_a_500(client):
    product = Product(sku="a/b", title="t", category=CategoryFactory(), price=1)
    assert client.get(product.get_absolute_url()).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/products/%00/",
        "/products/a%00b/",
        "/products/%01/",
        "/products/a%2Fb/",
        "/products/../",
        "/products/./",
        "/products/" + "x" * 65 + "/",
        "/products/ring%20one/",
        "/%00",
        "/admin/%00/",
        "/media/products/%00",
    ],
)
def test_bad_product_paths_are_404(client, path):
    ProductFactory(sku="x" * 64)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        {"similar": "\x00"},
        {"similar": "a/b"},
        {"text": "ring\x00"},
        {"text": "ring\x1b[31m"},
        {"category": "\x00"},
        {"image_ref": "\x00" * 64},
        {"\x00": "x"},
    ],
    ids=repr,
)
def test_bad_query_values_are_400_with_a_reason(client, query):
    response = client.get("/", query)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode() or "errorlist" in response.content.decode()


def test_query_text_may_hold_line_breaks_and_tabs(client):
    assert client.get("/", {"text": "gold\tring\r\nrose"}).status_code != 400


def test_api_refuses_control_characters_in_its_own_error_shape(client):
    for path, status in [("/api/v1/products/%00/", 404), ("/api/v1/products/?category=%00", 400)]:
        response = client.get(path)
        assert response.status_code == status, path
        assert response.json()["error"]["code"] in ("not_found", "invalid_characters")
