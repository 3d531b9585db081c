"""Words -> intent (pure: no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from search.understanding import Vocabulary, understand

SHOP = Vocabulary(
    categories={c: c for c in ("ring", "earring", "necklace", "pendant", "bangle", "bracelet")},
    category_names={c: c.title() for c in ("ring", "earring", "necklace", "pendant", "bangle", "bracelet")},
    currency="INR",
)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("wedding band", "ring"),
        ("diamond studs", "earring"),
        ("gold hoops", "earring"),
        ("jhumka", "earring"),
        ("gold chain", "necklace"),
        ("kada for men", "bangle"),
        ("rings", "ring"),
    ],
)
def test_category_synonyms_name_the_shops_category(text, category):
    assert understand(text, SHOP).category == category


@pytest.mark.parametrize(
    ("text", "metal", "colour"),
    [
        ("white gold ring", "gold", "white"),
        ("rose gold pendant", "gold", "rose"),
        ("yellow gold necklace with sapphire", "gold", "yellow"),
        ("gold bangle", "gold", None),
        ("925 silver ring", "silver", None),
        ("sterling earrings", "silver", None),
        ("platinum band", "platinum", None),
    ],
)
def test_metal_and_colour_are_read_together(text, metal, colour):
    understood = understand(text, SHOP)
    assert (understood.metal, understood.metal_color) == (metal, colour)


def test_white_gold_names_one_metal_value_and_plain_gold_names_every_gold():
    assert understand("white gold ring", SHOP).metals == ("white_gold",)
    assert set(understand("gold ring", SHOP).metals) == {"yellow_gold", "white_gold", "rose_gold", "two_tone_gold"}


@pytest.mark.parametrize(
    ("text", "stone"),
    [("rubies", "ruby"), ("diamonds ring", "diamond"), ("sapphires", "sapphire"), ("cz studs", "cubic_zirconia")],
)
def test_stones_are_read_with_their_plurals(text, stone):
    assert understand(text, SHOP).gemstone == stone


@pytest.mark.parametrize("text", ["plain gold bangle", "gold ring without stones", "ring with no stones"])
def test_plain_and_no_stones_mean_no_gemstone(text):
    assert understand(text, SHOP).gemstone == "none"


def test_shapes_are_read_and_emerald_cut_is_a_shape_not_a_stone():
    assert understand("oval sapphire ring", SHOP).shape == "oval"
    understood = understand("emerald cut diamond ring", SHOP)
    assert (understood.shape, understood.gemstone) == ("emerald cut", "diamond")


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("gold ring under 500", None, Decimal(500)),
        ("earrings below 20k", None, Decimal(20000)),
        ("necklace between 1000 and 3000", Decimal(1000), Decimal(3000)),
        ("bangle under ₹1,500", None, Decimal(1500)),
        ("ring above 2 lakh", Decimal(200000), None),
    ],
)
def test_prices_are_read_in_the_shops_currency(text, low, high):
    understood = understand(text, SHOP)
    assert (understood.price_min, understood.price_max, understood.currency) == (low, high, "INR")
    assert "price_max" in understood.as_dict() or "price_min" in understood.as_dict()


def test_a_price_in_another_currency_says_so():
    assert understand("ring under $200", SHOP).currency == "USD"


def test_understood_names_only_what_was_understood():
    assert understand("yellow gold necklace with sapphire", SHOP).as_dict() == {
        "category": "necklace",
        "metal": "gold",
        "metal_color": "yellow",
        "gemstone": "sapphire",
    }
    assert understand("laptop", SHOP).as_dict() == {}


def test_merchant_synonyms_are_read_as_what_they_mean():
    shop = Vocabulary(**{**SHOP.__dict__, "synonyms": {"mangalsutra": "necklace"}})
    understood = understand("gold mangalsutra", shop)
    assert understood.category == "necklace"
    assert ["necklace", "mangalsutra"] in [group[:2] for group in understood.terms]


def test_full_text_groups_keep_the_typed_word_and_the_shops_word():
    terms = understand("diamond studs", SHOP).terms
    assert ["diamond"] in terms
    assert any("studs" in group and "earring" in group for group in terms)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("diamond pendant necklace", "necklace"),
        ("necklace with a leaf pendant", "necklace"),
        ("gold ring for a pendant lover", "ring"),
        ("with a heart pendant", "pendant"),
    ],
)
def test_the_head_noun_names_the_category_when_the_words_name_two(text, category):
    assert understand(text, SHOP).category == category


def test_two_categories_named_share_the_category_credit():
    credits = understand("bangle bracelet with a rope texture", SHOP).attribute_credits()["category"]
    assert credits == {"bracelet": 0.5, "bangle": 0.5}
    assert understand("gold bangle", SHOP).attribute_credits()["category"] == {"bangle": 1.0}
