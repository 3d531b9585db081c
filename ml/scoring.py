"""The served scoring rule and the shop's word normaliser, written once.

Search's re-ranker (``search/ranking.py``), the lexical features (``ml.lexical``) and the
held-out evaluation (``ml.training.evaluation``) all import from here, so the model card
measures the rule search serves and "glass" is the same word everywhere. Pure: no torch,
no I/O; numpy only for the array form of the rule.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "NO_SIMILARITY",
    "STOP_WORDS",
    "served_similarity",
    "singular",
    "text_match",
    "token_set",
    "words",
]

_WORD = re.compile(r"[a-z0-9]+")
# Words that say nothing about a piece of jewelry (and the product-text field labels).
# Changing this list changes every product's lexical features, so the model version.
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "with",
        "without",
        "along",
        "each",
        "featuring",
        "features",
        "feature",
        "set",
        "metal",
        "gemstone",
        "stone",
        "design",
        "setting",
        "i",
        "im",
        "looking",
        "want",
        "need",
        "some",
    ]
)
# Words this short are never plurals ("bus", "gas"); longer ones ending in "ss" neither ("glass").
_MAX_NON_PLURAL_LENGTH = 3

# The similarity of a candidate with neither a photo nor a product vector: below any cosine.
NO_SIMILARITY = -1.0

Scores = NDArray[np.floating[Any]]


# ---------------------------------------------------------------- words


def singular(word: str) -> str:
    """Plural -> singular, enough for shop words ("earrings", "diamonds"; "glass" stays)."""
    if len(word) > _MAX_NON_PLURAL_LENGTH and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """The content words of a text, in order: accents folded, lower case, stop words out, singular.

    Stop words are dropped before the plural is stripped ("sets" stays as "set"), as the
    lexical features of every stored product were computed.
    """
    folded = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    return [singular(word) for word in _WORD.findall(folded) if word not in STOP_WORDS]


def token_set(text: str) -> frozenset[str]:
    """The distinct content words of a text (``words``), e.g. a query's words for ``text_match``."""
    return frozenset(words(text or ""))


def text_match(query_words: Collection[str], product_text: str) -> float:
    """Share of the query's words (``token_set`` of the query) found among the product text's words."""
    if not query_words:
        return 0.0
    product_words = token_set(product_text)
    return sum(word in product_words for word in query_words) / len(query_words)


# ---------------------------------------------------------------- the served rule


@overload
def served_similarity(
    photo_similarity: float | None, product_similarity: float | None, *, photo_only: bool
) -> float: ...


@overload
def served_similarity(photo_similarity: Scores, product_similarity: Scores | None, *, photo_only: bool) -> Scores: ...


@overload
def served_similarity(photo_similarity: None, product_similarity: Scores, *, photo_only: bool) -> Scores: ...


def served_similarity(
    photo_similarity: float | Scores | None, product_similarity: float | Scores | None, *, photo_only: bool
) -> float | Scores:
    """How search scores a product for a query: the cosine of the best like-for-like match.

    ``photo_similarity``: the query's cosine to the product's best catalog photo (its own
    photo-only vector); ``product_similarity``: to the fused product vector; either may be
    None when the product lacks that side. A photo-only query (``photo_only``) takes the
    closer of the two; a query with words (or a product, for "more like this") takes the
    product vector, since a photo's own vector cannot see the words (on held-out products,
    taking the max with photo vectors costs image+text queries 1.3 points of Recall@1,
    97.1 -> 95.8: the model card's "max with photo vectors" row). Neither side:
    ``NO_SIMILARITY``.

    Works on scalars (one candidate, as the re-ranker scores) and on numpy arrays of the
    same shape (a query x product score matrix, as the evaluation scores).
    """
    if not photo_only and product_similarity is not None:
        return product_similarity
    if photo_similarity is None:
        return NO_SIMILARITY if product_similarity is None else product_similarity
    if product_similarity is None:
        return photo_similarity
    if isinstance(photo_similarity, np.ndarray) or isinstance(product_similarity, np.ndarray):
        return np.maximum(photo_similarity, product_similarity)
    return max(photo_similarity, product_similarity)
