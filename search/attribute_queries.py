"""Attribute-phrase query sets: "yellow gold necklace with sapphire", each with every product
that has all the named attributes as relevant, and typo'd twins (one letter dropped or two
swapped in one word).

The attributes of a product are read the way the catalogue reads them on import
(`catalog.choices.metal_from_text`, `gemstone_from_text`), from a catalogue CSV in the
import format or from the products in the database; a product names every stone its
gemstone text lists ("pearl, cubic zirconia"), and a stone the catalogue has no choice for
("citrine") by the merchant's word.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from catalog.choices import Gemstone, Metal, gemstone_from_text, metal_from_text

METAL_WORDS: dict[str, str] = {
    Metal.YELLOW_GOLD: "yellow gold",
    Metal.WHITE_GOLD: "white gold",
    Metal.ROSE_GOLD: "rose gold",
    Metal.TWO_TONE_GOLD: "two tone gold",
    Metal.PLATINUM: "platinum",
    Metal.SILVER: "silver",
}
TYPO_SEED = 16
UNTOUCHED_WORDS = frozenset({"with", "in", "without", "plain"})


@dataclass(frozen=True)
class ProductAttributes:
    sku: str
    category: str  # lower-case category name
    metal: str  # a Metal value
    stones: frozenset[str]  # stone words; empty = no stone


@dataclass(frozen=True)
class AttributeQuery:
    text: str
    category: str
    metal: str | None
    stone: str | None  # None: not asked; "": asked for no stone

    def matches(self, product: ProductAttributes) -> bool:
        if product.category != self.category:
            return False
        if self.metal is not None and product.metal != self.metal:
            return False
        if self.stone == "":
            return not product.stones
        return self.stone is None or self.stone in product.stones


def stone_words(gemstone: str, gemstone_text: str) -> frozenset[str]:
    """The stones a product names: catalogue choices by their label, others by their word."""
    stones = set()
    for part in [p.strip() for p in (gemstone_text or "").split(",") if p.strip()]:
        choice = gemstone_from_text(part)
        if choice == Gemstone.OTHER:
            if "other" not in part.lower().split():  # "Round Multicolor Other" names no stone
                stones.add(" ".join(part.lower().split()))
        elif choice != Gemstone.NONE:
            stones.add(Gemstone(choice).label.lower())
    if gemstone not in (Gemstone.NONE, Gemstone.OTHER, ""):
        stones.add(Gemstone(gemstone).label.lower())
    return frozenset(stones)


def from_catalog_csv(path: Path) -> list[ProductAttributes]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return [
            ProductAttributes(
                sku=row["sku"].strip(),
                category=" ".join(row["category"].lower().split()),
                metal=metal_from_text(row.get("metal") or "", row.get("metal_color") or ""),
                stones=stone_words(gemstone_from_text(row.get("gemstone") or ""), row.get("gemstone") or ""),
            )
            for row in csv.DictReader(handle)
            if (row.get("sku") or "").strip() and (row.get("category") or "").strip()
        ]


def from_database() -> list[ProductAttributes]:
    from catalog.models import Product

    return [
        ProductAttributes(sku, " ".join(category.lower().split()), metal, stone_words(gemstone, gemstone_text))
        for sku, category, metal, gemstone, gemstone_text in Product.objects.filter(is_active=True).values_list(
            "sku", "category__name", "metal", "gemstone", "gemstone_text"
        )
    ]


def queries_for(product: ProductAttributes) -> list[AttributeQuery]:
    category, metal = product.category, METAL_WORDS.get(product.metal)
    queries = []
    if metal:
        queries.append(AttributeQuery(f"{metal} {category}", category, product.metal, None))
    for stone in sorted(product.stones):
        queries.append(AttributeQuery(f"{category} with {stone}", category, None, stone))
        if metal:
            queries += [
                AttributeQuery(f"{metal} {category} with {stone}", category, product.metal, stone),
                AttributeQuery(f"{stone} {category} in {metal}", category, product.metal, stone),
                AttributeQuery(f"{metal} {stone} {category}", category, product.metal, stone),
            ]
    if not product.stones and metal:
        queries.append(AttributeQuery(f"plain {metal} {category} without stones", category, product.metal, ""))
    return queries


def build(products: Iterable[ProductAttributes]) -> list[tuple[str, list[str]]]:
    """(query text, relevant skus) for every distinct attribute query of these products."""
    products = list(products)
    seen: dict[str, AttributeQuery] = {}
    for product in products:
        for query in queries_for(product):
            seen.setdefault(query.text, query)
    return [(text, sorted(p.sku for p in products if query.matches(p))) for text, query in sorted(seen.items())]


def typo(text: str, rng: random.Random) -> str:
    """One letter dropped, or two neighbouring letters swapped, in one word of 4+ letters."""
    words = text.split()
    choices = [i for i, w in enumerate(words) if len(w) >= 4 and w not in UNTOUCHED_WORDS]
    if not choices:
        return text
    index = rng.choice(choices)
    word = words[index]
    position = rng.randrange(1, len(word) - 1)  # keep the first letter, as most typos do
    if rng.random() < 0.5:
        word = word[:position] + word[position + 1 :]
    else:
        word = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    words[index] = word
    return " ".join(words)


def write(path: Path, rows: list[tuple[str, list[str]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query_image", "query_text", "relevant_skus"])
        for text, relevant in rows:
            writer.writerow(["", text, ";".join(relevant)])


def write_sets(out_dir: Path, products: list[ProductAttributes], seed: int = TYPO_SEED) -> dict[str, int]:
    """`attributes.csv` and `attributes-typo.csv` in out_dir; returns the query counts."""
    rows = build(products)
    rng = random.Random(seed)
    typos = [(typo(text, rng), relevant) for text, relevant in rows]
    write(out_dir / "attributes.csv", rows)
    write(out_dir / "attributes-typo.csv", typos)
    return {"attributes.csv": len(rows), "attributes-typo.csv": len(typos)}
