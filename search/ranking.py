"""Candidates + features -> ordered results. Pure functions: no ORM, no I/O.

The retrieval similarity dominates; small, named boosts reward agreement with what the
query suggests (a category the photo looks like, a metal or stone the text names) and
words of the query found in the product's own text. Every result keeps its breakdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ml import scoring


@dataclass(frozen=True)
class QuerySignals:
    """What the query suggests, per declared attribute (catalog/searchable.py): a
    distribution over values, e.g. {"category": {"Ring": 0.8, "Bangle": 0.2},
    "metal": {"rose_gold": 1.0}}."""

    attributes: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    tokens: frozenset[str] = frozenset()
    # A catalog photo's own vector holds no text, so it is a like-for-like match only for a
    # photo-only query; a query with words is scored against the fused product vector.
    photo_only: bool = True


@dataclass(frozen=True)
class CandidateFeatures:
    product_id: int
    image_similarity: float | None  # best photo of the product (cosine)
    product_similarity: float | None  # the fused product vector (cosine)
    attributes: Mapping[str, str]  # declared attribute -> the product's value (category: its name)
    text: str  # title + description, lower-cased by the caller or here


@dataclass(frozen=True)
class RankedResult:
    product_id: int
    score: float
    breakdown: dict[str, float]


def tokens(text: str) -> frozenset[str]:
    """The query's content words, normalised as everywhere (ml.scoring)."""
    return scoring.token_set(text)


text_match = scoring.text_match


def similarity(features: CandidateFeatures, photo_only: bool = True) -> float:
    """Exact cosine of the best like-for-like match.

    A photo-only query: its best catalog photo or the whole product, whichever is closer.
    A query with text (or a product, for "more like this"): the fused product vector, since
    a photo's own vector cannot see the words (``ml.training.evaluation`` measures both
    rules: on held-out products, taking the max with photo vectors costs image+text queries
    1.3 points of Recall@1, 97.1 -> 95.8).
    """
    return scoring.served_similarity(features.image_similarity, features.product_similarity, photo_only=photo_only)


def score_candidate(features: CandidateFeatures, signals: QuerySignals, weights: Mapping[str, float]) -> RankedResult:
    """Similarity, plus a boost per attribute weighted by how likely the query wants the
    product's value, plus the share of the query's words in the product's text."""
    breakdown = {"similarity": similarity(features, signals.photo_only)}
    for name, value in features.attributes.items():
        breakdown[name] = weights.get(name, 0.0) * signals.attributes.get(name, {}).get(value, 0.0)
    breakdown["text_match"] = weights.get("text_match", 0.0) * text_match(signals.tokens, features.text)
    score = weights.get("similarity", 1.0) * breakdown["similarity"] + sum(
        value for key, value in breakdown.items() if key != "similarity"
    )
    return RankedResult(
        features.product_id, round(float(score), 6), {k: round(float(v), 6) for k, v in breakdown.items()}
    )


def rank(
    candidates: Iterable[CandidateFeatures], signals: QuerySignals, weights: Mapping[str, float], k: int
) -> list[RankedResult]:
    """Score, then order by score (ties: product id, so results are deterministic)."""
    scored = [score_candidate(candidate, signals, weights) for candidate in candidates]
    scored.sort(key=lambda result: (-result.score, result.product_id))
    return scored[:k]


def predict_category(
    neighbour_categories: Sequence[str], neighbour_similarities: Sequence[float], temperature: float = 0.05
) -> dict[str, float]:
    """Similarity-weighted vote of the nearest catalog photos: {category: probability}."""
    if not neighbour_categories:
        return {}
    sims = np.asarray(neighbour_similarities, dtype=np.float64)
    weights = np.exp((sims - sims.max()) / temperature)
    totals: dict[str, float] = {}
    for category, weight in zip(neighbour_categories, weights, strict=False):
        totals[category] = totals.get(category, 0.0) + float(weight)
    norm = sum(totals.values())
    return dict(sorted(((c, w / norm) for c, w in totals.items()), key=lambda item: -item[1]))


# --- hybrid: dense + full text, fused, then intent -----------------------------------------

# Reciprocal rank fusion (Cormack et al. 2009), not a calibrated linear mix: cosine and
# ts_rank_cd live on scales that move from query to query (a one-word query has a tiny
# ts_rank_cd, a long one a large one), so a linear mix learned on our ~200 labelled queries
# would be fitted to their lengths; RRF needs only the two orders and is what Elasticsearch,
# Weaviate and Vespa ship as their default hybrid. 60 is the paper's constant.
RRF_K = 60


@dataclass(frozen=True)
class Intent:
    """The parsed query (search.understanding.Understood) as ranking sees it."""

    # declared attribute -> {value: credit}: "gold" gives every gold full credit, "rose gold"
    # gives rose gold 1 and the other golds partial credit.
    attributes: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    shape: str | None = None
    price_min: float | None = None
    price_max: float | None = None
    groups: int = 0  # full-text groups in the query


@dataclass(frozen=True)
class HybridCandidate:
    product_id: int
    dense_rank: int | None  # 1-based, among the candidates by their exact cosine
    lexical_rank: int | None  # 1-based order of the full-text side
    groups_matched: int
    similarity: float
    attributes: Mapping[str, frozenset[str]]  # declared attribute -> the product's values (category: slug)
    text: str
    price: float | None  # None: price on request


def rrf(ranks: Sequence[int | None], weights: Sequence[float], k: int = RRF_K) -> float:
    return sum(w / (k + r) for r, w in zip(ranks, weights, strict=True) if r is not None)


def intent_match(candidate: HybridCandidate, intent: Intent, weights: Mapping[str, float]) -> dict[str, float]:
    """A named boost for each part of the intent the product has."""
    boosts = {}
    for name, credits in intent.attributes.items():
        values = candidate.attributes.get(name, frozenset())
        credit = max((credits.get(value, 0.0) for value in values), default=0.0)
        boosts[name] = weights.get(name, weights.get("attribute", 0.0)) * credit
    if intent.shape:
        boosts["shape"] = weights["shape"] * float(intent.shape in tokens(candidate.text))
    if intent.price_min is not None or intent.price_max is not None:
        # A piece with its price on request is never inside a price the shopper named.
        inside = candidate.price is not None and (
            (intent.price_min is None or candidate.price >= intent.price_min)
            and (intent.price_max is None or candidate.price <= intent.price_max)
        )
        boosts["price"] = weights["price"] * float(inside)
    return boosts


def rank_hybrid(
    candidates: Iterable[HybridCandidate],
    intent: Intent,
    weights: Mapping[str, float],
    k: int,
) -> list[RankedResult]:
    """Fused rank (RRF of the dense and full-text orders), plus the share of the query's
    words found, plus the intent boosts. Weights are in `SEARCH_HYBRID_WEIGHTS`: for words
    the intent dominates (the shopper said what they want); for a photo with words the
    dense side dominates (the photo says more than a few words)."""
    scored = []
    for candidate in candidates:
        breakdown = {
            "similarity": candidate.similarity,
            "fused": rrf([candidate.dense_rank, candidate.lexical_rank], [weights["dense"], weights["lexical"]]),
            "words": weights["words"] * (candidate.groups_matched / intent.groups if intent.groups else 0.0),
            **intent_match(candidate, intent, weights),
        }
        score = sum(value for key, value in breakdown.items() if key != "similarity")
        score += weights.get("similarity", 0.0) * candidate.similarity
        scored.append(
            RankedResult(
                candidate.product_id, round(float(score), 6), {key: round(float(v), 6) for key, v in breakdown.items()}
            )
        )
    scored.sort(key=lambda result: (-result.score, result.product_id))
    return scored[:k]


def rank_photo_and_words(
    candidates: Iterable[CandidateFeatures],
    signals: QuerySignals,
    weights: Mapping[str, float],
    lexical_rank: Mapping[int, int],
    fusion: Mapping[str, float],
    k: int,
) -> list[RankedResult]:
    """A photo with words: the served rule (similarity + small boosts, the photo's category
    guess where the words name none) over both sides' candidates, plus their fused rank. The
    photo says more than a few words, so fusion only reorders near-ties (at most 2/61)."""
    scored = [score_candidate(candidate, signals, weights) for candidate in candidates]
    by_similarity = sorted(scored, key=lambda r: (-r.breakdown["similarity"], r.product_id))
    dense_rank = {result.product_id: i for i, result in enumerate(by_similarity, start=1)}
    fused = []
    for result in scored:
        value = rrf(
            [dense_rank[result.product_id], lexical_rank.get(result.product_id)], [fusion["dense"], fusion["lexical"]]
        )
        fused.append(
            RankedResult(
                result.product_id,
                round(result.score + value, 6),
                {**result.breakdown, "fused": round(value, 6)},
            )
        )
    fused.sort(key=lambda result: (-result.score, result.product_id))
    return fused[:k]
