"""pgvector HNSW: build time, index size, recall@10 against exact, latency vs ef_search.

Runs on the synthetic catalog of `benchmarks/synthetic.py` (called by `benchmarks.run`).
Queries go through `search.query._nearest`, the exact statement and settings the app
sends; the exact top-10 (the recall baseline) is computed in numpy over the same rows.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from .common import percentile

logger = logging.getLogger("benchmarks.hnsw")

EF_SWEEP = (10, 20, 40, 64, 100, 200, 400)
BUILD_SETTINGS = {"maintenance_work_mem": "1GB", "max_parallel_maintenance_workers": "1"}


def _session(cursor) -> None:
    for name, value in BUILD_SETTINGS.items():
        cursor.execute(f"SET {name} = '{value}'")


def build_indexes(version_id: int, *, m: int | None = None, ef_construction: int | None = None) -> dict:
    """Drop and build the version's two partial indexes the way the app does; time and size them."""
    from django.conf import settings
    from django.db import connection

    from indexing.vector_index import TABLES, drop_hnsw_indexes, ensure_hnsw_indexes, index_name

    old = settings.HNSW_M, settings.HNSW_EF_CONSTRUCTION
    m, ef_construction = m or old[0], ef_construction or old[1]
    settings.HNSW_M, settings.HNSW_EF_CONSTRUCTION = m, ef_construction
    try:
        drop_hnsw_indexes(version_id)
        with connection.cursor() as cursor:
            _session(cursor)
        started = time.perf_counter()
        ensure_hnsw_indexes(version_id)
        build_s = time.perf_counter() - started
    finally:
        settings.HNSW_M, settings.HNSW_EF_CONSTRUCTION = old
    sizes = {}
    with connection.cursor() as cursor:
        for kind in TABLES:
            cursor.execute("SELECT pg_relation_size(%s::regclass)", [index_name(kind, version_id)])
            sizes[kind] = round(cursor.fetchone()[0] / 1e6, 1)
    return {"build_s": round(build_s, 1), "index_mb": sizes, "m": m, "ef_construction": ef_construction}


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Row indexes (0-based) of the k most cosine-similar rows per query."""
    scores = queries @ vectors.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, 1).argsort(1)[:, ::-1]
    return np.take_along_axis(top, order, 1)


def literal(vector: np.ndarray) -> str:
    from search.query import _vector_literal

    return _vector_literal(vector)


def measure(
    kind: str, version_id: int, vectors: np.ndarray, queries: np.ndarray, *, ef: int, limit: int = 10, k: int = 10
) -> dict:
    """recall@k and latency of unfiltered HNSW queries at one ef_search, as the app sends them."""
    from django.conf import settings

    from search.query import Filters, _nearest

    truth = exact_top(vectors, queries, k)
    literals = [literal(q) for q in queries]
    old = settings.HNSW_EF_SEARCH
    settings.HNSW_EF_SEARCH = ef
    recalls, samples = [], []
    try:
        _nearest(kind, literals[0], version_id, Filters(), limit, exact=False)  # warm the connection
        for query_literal, wanted in zip(literals, truth, strict=False):
            started = time.perf_counter()
            hits = _nearest(kind, query_literal, version_id, Filters(), limit, exact=False)
            samples.append((time.perf_counter() - started) * 1000)
            got = {hit.product_id for hit in hits[:k]}
            recalls.append(len(got & {int(i) + 1 for i in wanted}) / k)  # product ids are row index + 1
    finally:
        settings.HNSW_EF_SEARCH = old
    return {
        "ef_search": max(ef, limit),
        "limit": limit,
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "queries": len(queries),
    }


def exact_latency(kind: str, version_id: int, queries: np.ndarray, limit: int = 80) -> dict:
    """The same query without the index (a sequential scan): the baseline HNSW beats."""
    from search.query import Filters, _nearest

    samples = []
    for query in queries:
        started = time.perf_counter()
        _nearest(kind, literal(query), version_id, Filters(), limit, exact=True)
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "queries": len(queries),
    }


def halfvec(version_id: int, vectors: np.ndarray, queries: np.ndarray, *, ef: int = 100, limit: int = 80) -> dict:
    """An expression index on embedding::halfvec (pgvector >= 0.7): size, build, recall, latency."""
    from django.conf import settings
    from django.db import connection, transaction

    name = f"bench_halfvec_v{int(version_id)}"
    dim = vectors.shape[1]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
        _session(cursor)
        started = time.perf_counter()
        cursor.execute(
            f"CREATE INDEX {name} ON search_imageembedding USING hnsw ((embedding::halfvec({dim})) halfvec_cosine_ops) "
            f"WITH (m = {int(settings.HNSW_M)}, ef_construction = {int(settings.HNSW_EF_CONSTRUCTION)}) "
            f"WHERE model_version_id = {int(version_id)}"
        )
        build_s = time.perf_counter() - started
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
        size_mb = cursor.fetchone()[0] / 1e6
    truth = exact_top(vectors, queries, 10)
    recalls, samples = [], []
    sql = (
        f"SELECT e.product_id FROM search_imageembedding e JOIN catalog_product p ON p.id = e.product_id "
        f"WHERE e.model_version_id = {int(version_id)} AND p.is_active "
        f"ORDER BY e.embedding::halfvec({dim}) <=> %s::halfvec({dim}) LIMIT %s"
    )
    for query, wanted in zip(queries, truth, strict=False):
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(max(ef, limit))])
            cursor.execute(sql, [literal(query), limit])
            rows = [row[0] for row in cursor.fetchall()]
        samples.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(rows[:10]) & {int(i) + 1 for i in wanted}) / 10)
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", [literal(queries[0]), limit])
        plan = " ".join(row[0] for row in cursor.fetchall())
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
    return {
        "build_s": round(build_s, 1),
        "index_mb": round(size_mb, 1),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "uses_index": name in plan,
    }


def explain_uses_index(kind: str, version_id: int, query: np.ndarray) -> bool:
    """The planner must pick the partial HNSW index for the app's statement."""
    from django.db import connection

    from indexing.vector_index import TABLES, index_name

    with connection.cursor() as cursor:
        cursor.execute(
            f"EXPLAIN SELECT e.product_id FROM {TABLES[kind]} e JOIN catalog_product p ON p.id = e.product_id "
            f"WHERE e.model_version_id = {int(version_id)} AND p.is_active "
            "ORDER BY e.embedding <=> %s::vector LIMIT 80",
            [literal(query)],
        )
        plan = " ".join(row[0] for row in cursor.fetchall())
    return index_name(kind, version_id) in plan
