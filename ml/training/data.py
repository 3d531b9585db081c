"""Products, the train/validation split, and the shopper queries built from them.

Everything random takes a seed or a ``numpy.random.Generator``: the same seed gives the
same split and the same queries in any process.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ml.data import giva
from ml.data.giva import GivaProduct

__all__ = [
    "VAL_FRACTION",
    "AttributeQuery",
    "all_attribute_queries",
    "attribute_key",
    "attribute_queries_for",
    "description_query",
    "split_products",
]

_WORD = re.compile(r"[a-z0-9][a-z0-9'\-]*")
# A "how it looks" query is a span of this many words of the visual description.
SPAN_MIN_WORDS, SPAN_MAX_WORDS = 5, 10
VAL_FRACTION = 0.2  # share of each category held out from training


def split_products(
    products: Sequence[GivaProduct], val_fraction: float = VAL_FRACTION, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Train/validation skus, stratified by category: each category keeps its share."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for product in products:
        by_category[product.category].append(product.sku)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for category in sorted(by_category):
        skus = sorted(by_category[category])
        order = rng.permutation(len(skus))
        n_val = max(1, round(len(skus) * val_fraction))
        val += [skus[i] for i in order[:n_val]]
        train += [skus[i] for i in order[n_val:]]
    return sorted(train), sorted(val)


def attribute_key(product: GivaProduct) -> tuple[str, str, str]:
    """(category noun, metal, gemstone): what an attribute query can ask for."""
    return giva.category_noun(product), giva.metal_name(product), giva.gemstone_name(product)


@dataclass(frozen=True)
class AttributeQuery:
    """A short query from attributes, e.g. "rose gold ring with diamond".

    ``None`` in a field means the query does not ask for it; a product matches when every
    asked-for field equals the product's.
    """

    text: str
    category: str | None
    metal: str | None
    gemstone: str | None

    def matches(self, key: tuple[str, str, str]) -> bool:
        category, metal, gemstone = key
        return (
            (self.category is None or self.category == category)
            and (self.metal is None or self.metal == metal)
            and (self.gemstone is None or self.gemstone == gemstone)
        )


def attribute_queries_for(key: tuple[str, str, str]) -> list[AttributeQuery]:
    """Every phrasing of the attribute queries a product with this key answers."""
    category, metal, gemstone = key
    queries = [
        AttributeQuery(f"{metal} {category}", category, metal, None),
    ]
    if gemstone:
        queries += [
            AttributeQuery(f"{metal} {category} with {gemstone}", category, metal, gemstone),
            AttributeQuery(f"{gemstone} {category} in {metal}", category, metal, gemstone),
            AttributeQuery(f"{category} with {gemstone}", category, None, gemstone),
            AttributeQuery(f"{metal} {gemstone} {category}", category, metal, gemstone),
        ]
    else:
        queries.append(AttributeQuery(f"plain {metal} {category} without stones", category, metal, ""))
    return queries


def all_attribute_queries(products: Sequence[GivaProduct]) -> list[AttributeQuery]:
    """The distinct attribute queries answered by at least one of these products."""
    seen: dict[str, AttributeQuery] = {}
    for key in sorted({attribute_key(product) for product in products}):
        for query in attribute_queries_for(key):
            seen.setdefault(query.text, query)
    return list(seen.values())


def description_query(product: GivaProduct, rng: np.random.Generator) -> str:
    """What a shopper might type after seeing the piece: a few words of how it looks.

    A contiguous span of 5-10 words of the visual description, with the category noun
    appended when the span lacks it (shoppers name the kind of jewelry).
    """
    words = _WORD.findall((product.visual_description or product.description).lower())
    if not words:
        return giva.category_noun(product)
    length = int(rng.integers(SPAN_MIN_WORDS, SPAN_MAX_WORDS + 1))
    start = int(rng.integers(0, max(1, len(words) - length + 1)))
    span = words[start : start + length]
    noun = giva.category_noun(product)
    if noun.rstrip("s") not in " ".join(span):
        span.append(noun)
    return " ".join(span)
