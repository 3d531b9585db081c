"""Filters never silently shorten a result list, on every supported pgvector version.

Marked `pgvector_compat`: `make test` runs these on the machine's pgvector 0.8
(iterative index scans) and again on the embedded pgvector 0.6 (over-fetch + exact).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from indexing.vector_index import capabilities
from search.query import Filters, retrieve

pytestmark = [pytest.mark.django_db, pytest.mark.pgvector_compat]

K = 20


def _matching(products, predicate) -> set[int]:
    return {p.pk for p in products if predicate(p)}


@pytest.mark.parametrize(
    ("filters", "predicate"),
    [
        (Filters(metal="rose_gold"), lambda p: p.metal == "rose_gold"),  # ~25%
        (Filters(gemstone="ruby"), lambda p: p.gemstone == "ruby"),  # ~14%
        (
            Filters(category="ring", metal="silver", gemstone="ruby"),
            lambda p: p.category.slug == "ring" and p.metal == "silver" and p.gemstone == "ruby",
        ),  # ~1%
        (
            Filters(price_min=Decimal("100"), price_max=Decimal("114"), in_stock=True),
            lambda p: 100 <= p.price <= 114 and p.stock > 0,
        ),  # 1%
    ],
    ids=["metal-25pct", "gemstone-14pct", "three-filters-1pct", "price-and-stock-1pct"],
)
@pytest.mark.parametrize("exact_scan_below", [0, 2000], ids=["graph", "exact-subset"])
def test_filtered_query_returns_k_products_whenever_k_match(
    synthetic_catalog, version, settings, filters, predicate, exact_scan_below
):
    settings.SEARCH_EXACT_SCAN_MAX_PRODUCTS = exact_scan_below
    products, vectors = synthetic_catalog(3000)
    matching = _matching(products, predicate)
    assert len(matching) >= K
    rng = np.random.default_rng(7)
    for query in (vectors[5], rng.normal(size=vectors.shape[1]).astype(np.float32)):
        grouped, strategy = retrieve(query / np.linalg.norm(query), version, filters, K)
        assert len(grouped) >= K, (strategy, len(grouped))
        assert set(grouped) <= matching, strategy
    if exact_scan_below == 0:
        expected = "hnsw-iterative" if capabilities().iterative_scan else "hnsw-overfetch"
        assert strategy.startswith(expected)


def test_filter_matching_fewer_than_k_returns_all_of_them(synthetic_catalog, version, settings):
    settings.SEARCH_EXACT_SCAN_MAX_PRODUCTS = 0
    products, vectors = synthetic_catalog(3000)
    filters = Filters(price_min=Decimal("100"), price_max=Decimal("100"))
    matching = _matching(products, lambda p: p.price == 100)
    grouped, _ = retrieve(vectors[0], version, filters, K)
    assert set(grouped) == matching
    assert 0 < len(matching) < K


def test_unfiltered_graph_results_agree_with_exact_search(synthetic_catalog, version):
    _, vectors = synthetic_catalog(3000)
    recalls = []
    for i in range(0, 200, 20):
        approx, _ = retrieve(vectors[i], version, Filters(), 10)
        exact, _ = retrieve(vectors[i], version, Filters(), 10, exact=True)
        top_exact = sorted(exact, key=lambda pid: -exact[pid]["product"])[:10]
        top_approx = sorted(approx, key=lambda pid: -approx[pid]["product"])[:10]
        recalls.append(len(set(top_exact) & set(top_approx)) / 10)
    assert np.mean(recalls) >= 0.9
