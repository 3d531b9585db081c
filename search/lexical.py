"""Full-text retrieval in PostgreSQL and typo correction against the catalogue's own words.

The index (`search_productdocument`, migration 0004) holds one tsvector per product: title
weight A, attributes and category B, description C, `english` stemming over unaccented
text. A query is a list of groups of alternative words (`Understood.terms`); every group
goes through `websearch_to_tsquery` on its own, so no character a shopper types can be
tsquery syntax, and the groups are combined from PostgreSQL's own output. A product
matching more groups ranks first, then by `ts_rank_cd` (cover density: the words close
together, in the title, score higher).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from django.db import connection

from .understanding import builtin_phrases

logger = logging.getLogger(__name__)

TS_CONFIG = "english"
MAX_GROUPS = 12
# Typo correction: a word the catalogue lacks (or uses for at most RARE_WORD_PRODUCTS
# products) is replaced by a catalogue word one edit away (two for long words) that many
# more products use. Trigram similarity (pg_trgm, where installed) picks the candidates.
RARE_WORD_PRODUCTS = 2
MORE_COMMON_BY = 5
TRIGRAM_CANDIDATE_SIMILARITY = 0.2
LONG_WORD = 8


@dataclass(frozen=True)
class LexicalHit:
    product_id: int
    groups_matched: int
    rank: float


def _group_queries(cursor, groups: list[list[str]]) -> list[str]:
    """Each group as a tsquery text made by PostgreSQL (alternatives OR-ed); empty ones dropped."""
    texts = []
    for group in groups[:MAX_GROUPS]:
        cursor.execute(
            "SELECT string_agg('(' || q::text || ')', ' | ') FROM ("
            f"SELECT websearch_to_tsquery('{TS_CONFIG}', search_unaccent(w)) AS q FROM unnest(%s::text[]) AS w"
            ") parts WHERE numnode(q) > 0",
            [list(group)],
        )
        text = cursor.fetchone()[0]
        if text:
            texts.append(text)
    return texts


def lexical_candidates(
    groups: list[list[str]], where: str, params: list, limit: int, *, min_groups: int = 1
) -> list[LexicalHit]:
    """Products matching at least `min_groups` groups, best first. `where` filters `p`."""
    if not groups:
        return []
    with connection.cursor() as cursor:
        queries = _group_queries(cursor, groups)
        if not queries:
            return []
        any_query = " | ".join(f"({q})" for q in queries)
        matched = " + ".join("(d.document @@ %s::tsquery)::int" for _ in queries)
        cursor.execute(
            f"SELECT d.product_id, {matched} AS groups, "
            f"ts_rank_cd(d.document, %s::tsquery) AS rank "
            "FROM search_productdocument d JOIN catalog_product p ON p.id = d.product_id "
            f"WHERE d.document @@ %s::tsquery AND {where} "
            f"AND {matched} >= %s "
            "ORDER BY groups DESC, rank DESC, d.product_id LIMIT %s",
            [*queries, any_query, any_query, *params, *queries, min_groups, limit],
        )
        return [LexicalHit(pid, int(groups_matched), float(rank)) for pid, groups_matched, rank in cursor.fetchall()]


# --- vocabulary and typo correction -----------------------------------------------------------


def known_words(words: list[str]) -> dict[str, int]:
    """word -> number of active products using it, for the words the catalogue has."""
    if not words:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT word, products FROM search_searchword WHERE word = ANY(%s) AND products > 0", [list(set(words))]
        )
        return dict(cursor.fetchall())


@lru_cache(maxsize=1)
def _has_trigrams() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm')")
        return bool(cursor.fetchone()[0])


def _candidates(word: str) -> list[tuple[str, int]]:
    """Catalogue words that could be what was meant: trigram neighbours (pg_trgm) plus words
    of a close length sharing the first or last letter (a swapped pair of letters shares
    few trigrams: "rnig" and "ring" share one)."""
    length_clause = "length(word) BETWEEN %s AND %s AND (left(word, 1) = left(%s, 1) OR right(word, 1) = right(%s, 1))"
    length_args: list[int | str] = [len(word) - 2, len(word) + 2, word, word]
    with connection.cursor() as cursor:
        if _has_trigrams():
            cursor.execute(
                f"SELECT word, products FROM search_searchword WHERE products > 0 AND word <> %s "
                f"AND (similarity(word, %s) >= %s OR ({length_clause}))",
                [word, word, TRIGRAM_CANDIDATE_SIMILARITY, *length_args],
            )
        else:
            cursor.execute(
                f"SELECT word, products FROM search_searchword WHERE products > 0 AND word <> %s AND {length_clause}",
                [word, *length_args],
            )
        return cursor.fetchall()


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment): a swap of two letters is one edit."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def correct(words: list[str], protected: set[str] | None = None) -> dict[str, str]:
    """Typed word -> the catalogue word meant, for the words that look like typos."""
    protected = (protected or set()) | builtin_phrases()
    counts = known_words(words)
    corrections = {}
    for word in dict.fromkeys(words):
        if word in protected or word.isdigit() or len(word) < 3:
            continue
        count = counts.get(word, 0)
        if count > RARE_WORD_PRODUCTS:
            continue
        allowed = 2 if len(word) >= LONG_WORD else 1
        best = None
        for candidate, products in _candidates(word):
            if products < max(1, count * MORE_COMMON_BY) or (count and products <= RARE_WORD_PRODUCTS):
                continue
            distance = edit_distance(word, candidate)
            if distance > allowed:
                continue
            key = (distance, -products, candidate)
            if best is None or key < best[0]:
                best = (key, candidate)
        if best is not None:
            corrections[word] = best[1]
    if corrections:
        logger.info("typo corrections %s", corrections)
    return corrections
