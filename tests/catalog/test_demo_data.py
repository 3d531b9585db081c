"""The demo catalogue reads like a real shop, checked over every demo product."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from catalog.choices import Gemstone, Metal, metal_from_text
from catalog.demo import demo_product_data, fix_mojibake, title_gemstones, title_metal
from ml.data.giva import load_products

MOJIBAKE = re.compile("â€|Ã.|Â.|\ufffd")
CODE = re.compile(r"\b\w+_\w+\b")
REPEATED_WORD = re.compile(r"\b(\w+) \1\b", re.I)


@pytest.fixture(scope="module")
def demo():
    return [demo_product_data(item) for item in load_products()]


def test_demo_texts_are_decoded_and_free_of_internal_codes(demo):
    assert len(demo) == 236
    for product in demo:
        for text in (product.title, product.description, product.metal_text, product.gemstone_text):
            assert not MOJIBAKE.search(text), (product.sku, text)
            assert not CODE.search(text), (product.sku, text)
            assert not REPEATED_WORD.search(text), (product.sku, text)
    titles = {product.title for product in demo}
    assert "Mama’s Treasure Diamond Pendant" in titles
    # The prose was left as written: 'pavé' and the like survive the decoding.
    assert any("pavé" in product.description for product in demo)


def test_demo_metals_and_stones_agree_with_the_titles(demo):
    for product in demo:
        metal = metal_from_text(product.metal_text)
        assert metal != Metal.OTHER, product
        named_metal = title_metal(product.title)
        if named_metal:
            assert metal == named_metal, (product.sku, product.title, product.metal_text)
        assert f"Metal: {product.metal_text}." in product.description, product.sku
        named_stones = title_gemstones(product.title)
        if named_stones:
            assert gemstone_of(product) in named_stones, (product.sku, product.title, product.gemstone_text)
    by_sku = {product.sku: product for product in demo}
    assert metal_from_text(by_sku["BL00832-SSS300"].metal_text) == Metal.SILVER  # "Gold Plated 925 Silver"
    assert by_sku["BL00832-SSS300"].metal_text == "925 silver, gold plated"
    assert gemstone_of(by_sku["JT01430-YGS3P0"]) == Gemstone.PEARL  # "Infinity Adjustable Pearl Bracelet"


def test_demo_stock_is_varied_deterministic_and_sometimes_sold_out(demo):
    stock = Counter(product.stock for product in demo)
    assert 0.05 < stock[0] / len(demo) < 0.25
    assert len(stock) >= 5
    assert [product.stock for product in demo] == [demo_product_data(item).stock for item in load_products()]


@pytest.mark.parametrize(
    ("text", "fixed"),
    [
        ("Mamaâ€™s Treasure", "Mama’s Treasure"),
        ("Â© 2024 â€“ pavÃ© set", "© 2024 – pavé set"),
        ("pavé, Mama’s, “quoted”", "pavé, Mama’s, “quoted”"),
        ("Mặt dây chuyền Vàng trắng", "Mặt dây chuyền Vàng trắng"),
        ("सोने की अंगूठी", "सोने की अंगूठी"),
    ],
)
def test_mojibake_is_decoded_and_right_text_is_left_alone(text, fixed):
    assert fix_mojibake(text) == fixed


def gemstone_of(product) -> str:
    from catalog.choices import gemstone_from_text

    return gemstone_from_text(product.gemstone_text)
