"""`make bench`: every benchmark in benchmarks/, one table, `benchmarks/results.json`.

    python -m benchmarks.run            # 100K products (~12 min on 2 cores)
    python -m benchmarks.run --quick    # 20K products, fewer queries (~5 min)
    python -m benchmarks.run --docs     # also refresh the plot in docs/
    python -m benchmarks.run --quality  # also evaluate's Recall@10, eager vs ONNX (+~8 min)

Every number that is a ratio has its baseline measured in this run, on this machine:
absolute timings on a shared 2-core box are noisy, ratios much less so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from . import encode
from .common import (
    BENCH_DATABASE_URL,
    BENCH_REDIS_URL,
    OUT_DIR,
    ROOT,
    ensure_database,
    load_average,
    setup_django,
    setup_logging,
)

logger = logging.getLogger("benchmarks.run")
RESULTS = ROOT / "benchmarks" / "results.json"
DOCS_PLOT = ROOT / "docs" / "performance-hnsw.png"

TARGETS = {  # key: (comparison, target) for the table's last column
    "encode.speedup": (">=", 2),
    "query.image_p95_ms": ("<=", 100),
    "query.db_p95_ms": ("<=", 10),
    "hnsw.recall_at_10": (">=", 0.98),
    "filtered.full_k_fraction": (">=", 0.99),
    "ingest.img_per_s": (">=", 30),
}


def run_ingest(quick: bool, fusion_weights: str | None) -> dict:
    """benchmarks/ingest.py (the indexing helper's), in its own scratch database."""
    script = ROOT / "benchmarks" / "ingest.py"
    if not script.is_file():
        return {"ingest.img_per_s": "missing", "ingest.note": "benchmarks/ingest.py is not there"}
    env = dict(os.environ)
    env.update({"DATABASE_URL": BENCH_DATABASE_URL, "REDIS_URL": BENCH_REDIS_URL})  # scratch: <db>_bench
    photos = 64 if quick else 200
    usage = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    ).stdout
    command = [sys.executable, str(script), "--photos", str(photos)]
    if "--redis-db" in usage:
        command += ["--redis-db", BENCH_REDIS_URL.rsplit("/", 1)[-1]]
    if fusion_weights and "--fusion-weights" in usage:
        command += ["--fusion-weights", fusion_weights]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    (OUT_DIR / "ingest.log").write_text(done.stdout + "\n" + done.stderr)
    rate = re.search(r"->\s*([\d.]+)\s*photos/s", done.stdout)
    baseline = re.search(r"baseline\s+([\d.]+)\s*photos/s", done.stdout)
    if done.returncode != 0 or not rate:
        return {
            "ingest.img_per_s": "missing",
            "ingest.note": f"benchmarks/ingest.py exited {done.returncode}: see benchmarks/out/ingest.log",
        }
    result = {
        "ingest.img_per_s": float(rate.group(1)),
        "ingest.photos": photos,
        "ingest.wall_s": round(time.perf_counter() - started, 1),
    }
    if baseline:
        result["ingest.model_only_img_per_s"] = float(baseline.group(1))
    return result


def run_quality(results: dict) -> dict:
    """benchmarks/quality.py in its own process (it sets Django up on another database)."""
    command = [sys.executable, "-m", "benchmarks.quality"]
    if not str(results.get("encode.fusion", "")).startswith("trained"):
        command += ["--fusion-weights", "random:0"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=2400, check=False)
    (OUT_DIR / "quality.log").write_text(done.stdout + "\n" + done.stderr)
    path = OUT_DIR / "quality.json"
    if done.returncode != 0 or not path.is_file():
        return {"quality.note": f"benchmarks/quality.py exited {done.returncode}: see benchmarks/out/quality.log"}
    return {k: v for k, v in json.loads(path.read_text()).items() if k.startswith("quality.")}


def plot(curves: dict, sizes_ms: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (label, points), colour in zip(curves.items(), ("tab:blue", "tab:orange"), strict=False):
        ef = [p["ef_search"] for p in points]
        axes[0].plot(ef, [p["recall_at_10"] for p in points], marker="o", label=label, color=colour)
        axes[1].plot(ef, [p["p95_ms"] for p in points], marker="o", label=f"{label} p95", color=colour)
        axes[1].plot(ef, [p["p50_ms"] for p in points], marker=".", linestyle="--", label=f"{label} p50", color=colour)
    axes[0].set(xscale="log", xlabel="hnsw.ef_search", ylabel="recall@10 vs exact", title="Recall against ef_search")
    axes[0].axhline(0.98, color="grey", linestyle=":", linewidth=1)
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="hnsw.ef_search",
        ylabel="ms (SQL round trip)",
        title="Latency against ef_search",
    )
    sizes = sorted(sizes_ms, key=int)
    axes[2].plot(sizes, [sizes_ms[s]["hnsw_p95_ms"] for s in sizes], marker="o", label="HNSW p95 (ef_search 100)")
    if all("hnsw_p50_ms" in sizes_ms[s] for s in sizes):
        axes[2].plot(
            sizes,
            [sizes_ms[s]["hnsw_p50_ms"] for s in sizes],
            marker=".",
            linestyle="--",
            label="HNSW p50 (ef_search 100)",
        )
    axes[2].plot(sizes, [sizes_ms[s]["exact_p95_ms"] for s in sizes], marker="s", label="exact scan p95")
    axes[2].set(xscale="log", yscale="log", xlabel="products", ylabel="ms", title="Latency against catalog size")
    for axis in axes:
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_database(args, result: dict) -> dict:
    """Everything on the synthetic catalog: load, build, recall/latency, filters, profile, HTTP."""
    from django.conf import settings

    from . import filtered, hnsw, http_search, profile_search, synthetic

    products = args.products or (20_000 if args.quick else 100_000)
    small = min(10_000, products // 2)
    n_queries = 100 if args.quick else 200
    version = result["encode.version"]
    random_fusion = not str(result.get("encode.fusion", "")).startswith("trained")
    weights = {"fusion_weights": "random:0"} if random_fusion else {}
    base = synthetic.load_base(encode.base_embeddings_path(version))
    out: dict = {"query.products": products}
    timings: dict = {}

    started = time.perf_counter()
    catalog = synthetic.load_catalog(base, products, version, weights, version.split("@")[0])
    out["load.copy_s"] = round(catalog.load_s, 1)
    out["load.reused"] = catalog.reused
    built = hnsw.build_indexes(catalog.version_id)
    out["hnsw.build_s"] = built["build_s"]
    out["hnsw.index_mb"] = round(sum(built["index_mb"].values()), 1)
    out["hnsw.index_mb_per_100k"] = round(out["hnsw.index_mb"] * 100_000 / products, 1)
    out["hnsw.params"] = {
        "m": built["m"],
        "ef_construction": built["ef_construction"],
        "ef_search": settings.HNSW_EF_SEARCH,
    }
    out["hnsw.build_detail"] = built
    subset_id = synthetic.add_subset_version(catalog, small, f"bench-subset-{small}")
    out["hnsw.subset_build"] = hnsw.build_indexes(subset_id)
    timings["load+build_s"] = round(time.perf_counter() - started, 1)

    query_image, query_product, query_parents = synthetic.Generator(base, seed=7).draw(n_queries)
    query_categories = base.categories[query_parents]
    out["hnsw.uses_index"] = hnsw.explain_uses_index("image", catalog.version_id, query_image[0])

    # The app's own call: k=20 -> limit 80 rows per index, ef_search = HNSW_EF_SEARCH.
    app_image = hnsw.measure(
        "image", catalog.version_id, catalog.image, query_image, ef=settings.HNSW_EF_SEARCH, limit=80
    )
    app_product = hnsw.measure(
        "product", catalog.version_id, catalog.product, query_product, ef=settings.HNSW_EF_SEARCH, limit=80
    )
    exact = hnsw.exact_latency("image", catalog.version_id, query_image[:20])
    out["hnsw.recall_at_10"] = min(app_image["recall_at_10"], app_product["recall_at_10"])
    out["hnsw.recall_detail"] = {"image": app_image, "product": app_product}
    out["query.db_p50_ms"] = app_image["p50_ms"]
    out["query.db_p95_ms"] = app_image["p95_ms"]
    out["query.exact_scan_p95_ms"] = exact["p95_ms"]

    ef_values = hnsw.EF_SWEEP if not args.quick else (10, 40, 100, 200)
    curves, sizes_ms = {}, {}
    for label, version_id, rows in (
        (f"{small // 1000}K products", subset_id, small),
        (f"{products // 1000}K products", catalog.version_id, products),
    ):
        curves[label] = [
            hnsw.measure("image", version_id, catalog.image[:rows], query_image, ef=ef, limit=10) for ef in ef_values
        ]
        at_app = next(p for p in curves[label] if p["ef_search"] == settings.HNSW_EF_SEARCH)
        sizes_ms[rows] = {
            "hnsw_p95_ms": at_app["p95_ms"],
            "hnsw_p50_ms": at_app["p50_ms"],
            "exact_p95_ms": hnsw.exact_latency("image", version_id, query_image[:20])["p95_ms"],
        }
        logger.info("ef sweep %s: %s", label, curves[label])
    out["hnsw.curves"] = curves
    out["hnsw.latency_by_size"] = {str(k): v for k, v in sizes_ms.items()}
    plot(curves, sizes_ms, OUT_DIR / "hnsw.png")
    if args.docs:
        shutil.copy(OUT_DIR / "hnsw.png", DOCS_PLOT)

    if not args.skip_halfvec:
        out["halfvec"] = hnsw.halfvec(catalog.version_id, catalog.image, query_image[: n_queries // 2])
        out["halfvec"]["vector_index_mb"] = built["index_mb"]["image"]

    out.update(
        filtered.run(catalog, query_image[: (40 if args.quick else 60)], query_categories[: (40 if args.quick else 60)])
    )

    serving = result["encode.best_backend"]
    from ml.accel import BACKENDS

    serving = serving if serving in BACKENDS and serving != "eager" else "onnx"
    photos = http_search.query_photos(25, seed=3)
    out.update(profile_search.run(photos, serving))
    if not args.skip_http:
        extra_env = {"SEARCH_FUSION_WEIGHTS": "random:0"} if random_fusion else {}
        out.update(http_search.run(["eager", serving], 40 if args.quick else 100, 12 if args.quick else 30, extra_env))
    out["timings"] = timings
    return out


def print_table(results: dict) -> None:
    keys = [k for k in results if not isinstance(results[k], (dict, list))]
    width = max(len(k) for k in keys)
    print()
    print(f"{'metric':<{width}}  {'value':>14}  target")
    print("-" * (width + 30))
    for key in keys:
        value = results[key]
        target = ""
        if key in TARGETS:
            op, goal = TARGETS[key]
            if isinstance(value, (int, float)):
                met = value >= goal if op == ">=" else value <= goal
                target = f"{op} {goal}  {'MET' if met else 'NOT MET'}"
            else:
                target = f"{op} {goal}  (missing)"
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:<{width}}  {shown:>14}  {target}")
    encode.print_table({"encode.detail": results["encode.detail"]}) if "encode.detail" in results else None
    if "hnsw.curves" in results:
        print("\nrecall@10 / p95 ms against ef_search (limit 10, unfiltered, image index)")
        for label, points in results["hnsw.curves"].items():
            print(
                f"  {label:<14}"
                + "  ".join(f"ef{p['ef_search']}: {p['recall_at_10']:.3f}/{p['p95_ms']:.1f}" for p in points)
            )
    if "filtered.detail" in results:
        print("\nfiltered (k=20) through search.query.retrieve")
        for label, row in results["filtered.detail"].items():
            print(
                f"  {label:<40} full {row['full_k_fraction']:.3f}  min {row['min_results']:>3}  "
                f"p95 {row['p95_ms']:>7.1f} ms  {row['strategies']}"
            )
    if "query.http_detail" in results:
        print("\nHTTP /api/v1/search/ (photo, k=20), ms")
        for backend, row in results["query.http_detail"].items():
            print(
                f"  {backend:<12} uncached p50 {row['uncached_p50_ms']:>7.1f} p95 {row['uncached_p95_ms']:>7.1f}   "
                f"cached p50 {row['cached_p50_ms']:>6.1f} p95 {row['cached_p95_ms']:>6.1f}"
            )
    if "profile.stages_median_ms" in results:
        print(f"\nsearch() stages, median ms ({results.get('profile.backend')}): {results['profile.stages_median_ms']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20K products, fewer queries")
    parser.add_argument("--full", action="store_true", help="also torch.compile in the encode comparison")
    parser.add_argument("--products", type=int, default=None)
    parser.add_argument("--docs", action="store_true", help="refresh docs/performance-hnsw.png")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-halfvec", action="store_true")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--only-encode", action="store_true")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="also evaluate's Recall@10 eager vs the serving backend (benchmarks/quality.py, ~8 min)",
    )
    parser.add_argument("--replot", action="store_true", help="redraw the plot from benchmarks/results.json only")
    args = parser.parse_args()
    setup_logging()
    if args.replot:
        saved = json.loads(RESULTS.read_text())
        sizes = {int(k): v for k, v in saved["hnsw.latency_by_size"].items()}
        for size, label in zip(sorted(sizes), saved["hnsw.curves"], strict=False):
            point = next(p for p in saved["hnsw.curves"][label] if p["ef_search"] == saved["hnsw.params"]["ef_search"])
            sizes[size].setdefault("hnsw_p50_ms", point["p50_ms"])
        plot(saved["hnsw.curves"], sizes, DOCS_PLOT if args.docs else OUT_DIR / "hnsw.png")
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results: dict = {
        "run.started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "run.quick": args.quick,
        "run.cpus": os.cpu_count(),
        "run.python": platform.python_version(),
        "run.load_average_start": load_average(),
    }
    sections: dict = {}
    t = time.perf_counter()
    results.update(encode.run(quick=args.quick, full=args.full))
    sections["encode_s"] = round(time.perf_counter() - t, 1)
    if not args.only_encode:
        ensure_database()
        setup_django()
        t = time.perf_counter()
        results.update(run_database(args, results))
        sections["database_s"] = round(time.perf_counter() - t, 1)
        if not args.skip_ingest:
            t = time.perf_counter()
            random_fusion = not str(results.get("encode.fusion", "")).startswith("trained")
            results.update(run_ingest(args.quick, "random:0" if random_fusion else None))
            sections["ingest_s"] = round(time.perf_counter() - t, 1)
    if args.quality:
        t = time.perf_counter()
        results.update(run_quality(results))
        sections["quality_s"] = round(time.perf_counter() - t, 1)
    results["run.sections_s"] = sections
    results["run.total_s"] = round(time.perf_counter() - started, 1)
    results["run.load_average_end"] = load_average()
    ordered = dict(sorted(results.items(), key=lambda item: (isinstance(item[1], (dict, list)), item[0])))
    RESULTS.write_text(
        json.dumps(ordered, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o)) + "\n"
    )
    print_table(ordered)
    print(f"\nwrote {RESULTS.relative_to(ROOT)} in {results['run.total_s']:.0f}s")


if __name__ == "__main__":
    main()
