"""Filtered search: does a filter ever shorten the result list? Through `search.query.retrieve`.

Selectivities 50 %, 10 %, 1 %, 0.1 % come from price bands (prices are a permutation, so
the band holds exactly that share; the price is independent of the vectors, the hard
case for a graph walk). A category filter with queries from another category (the
filter excludes the query's own neighbourhood) is measured too. A query is "full" when
retrieve returns at least k products (every band holds far more than k).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from decimal import Decimal

import numpy as np

from .common import percentile

logger = logging.getLogger("benchmarks.filtered")

SELECTIVITIES = (0.5, 0.1, 0.01, 0.001)
K = 20


def run(catalog, queries: np.ndarray, query_categories: np.ndarray) -> dict:
    from catalog.models import Category
    from indexing.models import ModelVersion
    from search.query import Filters, retrieve

    version = ModelVersion.objects.get(pk=catalog.version_id)
    rows, all_samples, full = {}, [], []
    cases = [(f"{s:.1%}", Filters(price_max=Decimal(100 + int(s * catalog.products) - 1)), None) for s in SELECTIVITIES]
    slugs = dict(Category.objects.values_list("name", "slug"))
    for name, slug in sorted(slugs.items()):
        cases.append((f"category={slug} (other-category queries)", Filters(category=slug), name))
    retrieve(queries[0], version, cases[0][1], K)  # warm
    for label, filters, category in cases:
        chosen = queries if category is None else queries[query_categories != category][: max(10, len(queries) // 4)]
        samples, counts, strategies = [], [], Counter()
        for vector in chosen:
            started = time.perf_counter()
            grouped, strategy = retrieve(vector, version, filters, K)
            samples.append((time.perf_counter() - started) * 1000)
            counts.append(len(grouped))
            strategies[strategy] += 1
        share = float(np.mean([c >= K for c in counts]))
        rows[label] = {
            "full_k_fraction": round(share, 4),
            "min_results": int(min(counts)),
            "p50_ms": round(percentile(samples, 50), 2),
            "p95_ms": round(percentile(samples, 95), 2),
            "strategies": dict(strategies),
            "queries": len(chosen),
        }
        logger.info("filter %s: %s", label, rows[label])
        if category is None:
            all_samples += samples
            full += [c >= K for c in counts]
    return {
        "filtered.full_k_fraction": round(float(np.mean(full)), 4),
        "query.filtered_p95_ms": round(percentile(all_samples, 95), 2),
        "query.filtered_p50_ms": round(percentile(all_samples, 50), 2),
        "filtered.detail": rows,
    }
