"""The attribute query sets of `manage.py make_attribute_queries` (pure: a CSV in tmp_path)."""

from __future__ import annotations

import csv
import random

from search import attribute_queries

ROWS = [
    ("A-1", "Yellow gold necklace with round sapphire", "necklace", "18k gold", "yellow", "sapphire"),
    ("A-2", "Yellow gold necklace", "necklace", "18k gold", "yellow", ""),
    ("A-3", "Nhẫn vàng trắng", "ring", "14k gold", "white", "pearl, cubic zirconia"),
    ("A-4", "Silver torc", "necklace", "sterling silver", "silver", "citrine"),
]


def _catalog(tmp_path):
    path = tmp_path / "catalog.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["sku", "title", "description", "category", "metal", "metal_color", "gemstone", "price", "images"]
        )
        for sku, title, category, metal, colour, stone in ROWS:
            writer.writerow([sku, title, "", category, metal, colour, stone, "", f"images/{sku}.jpg"])
    return path


def test_every_product_with_all_the_named_attributes_is_relevant(tmp_path):
    queries = dict(attribute_queries.build(attribute_queries.from_catalog_csv(_catalog(tmp_path))))
    assert queries["yellow gold necklace"] == ["A-1", "A-2"]
    assert queries["yellow gold necklace with sapphire"] == ["A-1"]
    assert queries["plain yellow gold necklace without stones"] == ["A-2"]
    # every stone a product lists is asked for, a stone without a catalogue choice by its word
    assert queries["white gold ring with pearl"] == queries["white gold ring with cubic zirconia"] == ["A-3"]
    assert queries["necklace with citrine"] == ["A-4"]


def test_a_typo_drops_or_swaps_one_letter_in_one_word(tmp_path):
    rng = random.Random(0)
    for text, _ in attribute_queries.build(attribute_queries.from_catalog_csv(_catalog(tmp_path))):
        typo = attribute_queries.typo(text, rng)
        changed = [(a, b) for a, b in zip(text.split(), typo.split(), strict=True) if a != b]
        assert len(changed) == 1, (text, typo)
        before, after = changed[0]
        assert len(after) == len(before) - 1 or sorted(after) == sorted(before)


def test_the_command_writes_both_sets(tmp_path):
    counts = attribute_queries.write_sets(tmp_path / "out", attribute_queries.from_catalog_csv(_catalog(tmp_path)))
    assert counts["attributes.csv"] == counts["attributes-typo.csv"] > 5
    assert (tmp_path / "out" / "attributes-typo.csv").read_text().startswith("query_image,query_text,relevant_skus")
