"""Retrieval metrics: Recall@K, mAP@K, NDCG@K and precision@K, from a relevance matrix.

All functions take ``scores`` (Q, G) and ``relevant`` (Q, G) bool and rank the gallery
by descending score (exact cosine search when rows are unit vectors).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

_MIN_NORM = 1e-12  # keeps the division defined for all-zero rows

__all__ = ["average_precision_at_k", "cosine_scores", "ndcg_at_k", "precision_at_k", "recall_at_k", "retrieval_metrics"]


def cosine_scores(queries: NDArray[Any], gallery: NDArray[Any]) -> NDArray[np.floating[Any]]:
    """Cosine similarity of every query with every gallery row (normalises both)."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), _MIN_NORM)
    g = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), _MIN_NORM)
    scores: NDArray[np.floating[Any]] = q @ g.T
    return scores


def _ranked_relevance(scores: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    # Stable sort on the negated scores: ties keep gallery order, so results are reproducible.
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(relevant, order, axis=1).astype(np.float64)


def recall_at_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """Share of queries with at least one relevant item in the top k."""
    return float(_ranked_relevance(scores, relevant, k).max(axis=1).mean())


def average_precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    """mAP@k, normalised by min(k, number of relevant items)."""
    hits = _ranked_relevance(scores, relevant, k)
    precision = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denominator = np.minimum(relevant.sum(axis=1), k).clip(min=1)
    return float(((precision * hits).sum(axis=1) / denominator).mean())


def ndcg_at_k(scores: np.ndarray, relevant: np.ndarray, k: int) -> float:
    hits = _ranked_relevance(scores, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, hits.shape[1] + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal_hits = np.minimum(relevant.sum(axis=1), hits.shape[1]).astype(int)
    idcg = np.array([discounts[:n].sum() for n in ideal_hits]).clip(min=_MIN_NORM)
    return float((dcg / idcg).mean())


def precision_at_k(scores: np.ndarray, relevant: np.ndarray, k: int, capped: bool = True) -> float:
    """Share of the top k that is relevant; ``capped`` divides by min(k, #relevant)
    so a query with only 3 matching products can still score 1.0."""
    hits = _ranked_relevance(scores, relevant, k).sum(axis=1)
    denominator = np.minimum(relevant.sum(axis=1), k).clip(min=1) if capped else k
    return float((hits / denominator).mean())


def retrieval_metrics(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    """The standard table row: R@1, R@5, R@10, mAP@10, NDCG@10."""
    return {
        "R@1": recall_at_k(scores, relevant, 1),
        "R@5": recall_at_k(scores, relevant, 5),
        "R@10": recall_at_k(scores, relevant, 10),
        "mAP@10": average_precision_at_k(scores, relevant, 10),
        "NDCG@10": ndcg_at_k(scores, relevant, 10),
    }
