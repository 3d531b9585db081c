"""HNSW build parameters (m, ef_construction) against build time, size, recall and latency.

    python -m benchmarks.hnsw_sweep [--sizes 10000 100000]

Run after `python -m benchmarks.run` has loaded the synthetic catalog (it reuses it).
Builds one extra partial index on the photo vectors per (size, m, ef_construction) on
a RETIRED copy version of the first N products, measures recall@10 and latency at a
few ef_search values through `search.query._nearest`, drops it. Minutes per 100K build
on 2 cores: not part of `make bench`; its output is written up in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

from . import encode, hnsw, synthetic
from .common import OUT_DIR, ensure_database, setup_django, setup_logging

logger = logging.getLogger("benchmarks.hnsw_sweep")
GRID = ((8, 64), (16, 32), (16, 64), (16, 128), (24, 64))
EF = (40, 100, 200)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--grid", default=None, help="e.g. 16x64,24x64")
    args = parser.parse_args()
    setup_logging()
    ensure_database()
    setup_django()
    from django.db import connection

    from indexing.models import ModelVersion

    grid = GRID if not args.grid else tuple(tuple(int(x) for x in cell.split("x")) for cell in args.grid.split(","))
    active = ModelVersion.objects.get(state="active")
    base = synthetic.load_base(encode.base_embeddings_path(active.version))
    n = max(args.sizes)
    image, _, _ = synthetic.Generator(base).draw(n)  # the same draw as the loaded catalog
    catalog = synthetic.Catalog(active.pk, active.version, n, image, None, None, 0.0, True)
    queries, _, _ = synthetic.Generator(base, seed=7).draw(args.queries)
    rows = []
    for size in args.sizes:
        version_id = active.pk if size == n else synthetic.add_subset_version(catalog, size, f"bench-subset-{size}")
        for m, ef_construction in grid:
            name = f"bench_sweep_v{version_id}"
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
                hnsw._session(cursor)
                # the app's own index on this version goes, so the planner uses this one
                cursor.execute(f"DROP INDEX IF EXISTS indexing_imageembedding_hnsw_v{version_id}")
                started = time.perf_counter()
                cursor.execute(
                    f"CREATE INDEX {name} ON indexing_imageembedding USING hnsw (embedding vector_cosine_ops) "
                    f"WITH (m = {m}, ef_construction = {ef_construction}) WHERE model_version_id = {version_id}"
                )
                build_s = time.perf_counter() - started
                cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
                size_mb = cursor.fetchone()[0] / 1e6
            for ef in EF:
                point = hnsw.measure("image", version_id, image[:size], queries, ef=ef, limit=10)
                rows.append(
                    {
                        "products": size,
                        "m": m,
                        "ef_construction": ef_construction,
                        "build_s": round(build_s, 1),
                        "index_mb": round(size_mb, 1),
                        **point,
                    }
                )
                logger.info("%s", rows[-1])
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
    # put the app's indexes back as the app builds them
    from indexing.vector_index import ensure_hnsw_indexes

    ensure_hnsw_indexes(active.pk)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "hnsw_sweep.json").write_text(json.dumps(rows, indent=2))
    print(f"{'products':>8} {'m':>3} {'efc':>4} {'build s':>7} {'MB':>6} {'ef':>4} {'recall':>7} {'p50':>6} {'p95':>6}")
    for row in rows:
        print(
            f"{row['products']:>8} {row['m']:>3} {row['ef_construction']:>4} "
            f"{row['build_s']:>7.1f} {row['index_mb']:>6.1f} "
            f"{row['ef_search']:>4} {row['recall_at_10']:>7.3f} {row['p50_ms']:>6.2f} {row['p95_ms']:>6.2f}"
        )


if __name__ == "__main__":
    main()
