"""Search quality with the fast backend: `evaluate`'s Recall@10 with eager vs ONNX Runtime.

    python -m benchmarks.quality          # or: python -m benchmarks.run --quality

The demo catalog (236 real products) in its own database (`shop_search_perf_eval`, made
afresh each run), indexed in this process; the held-out query set of `manage.py make_eval_queries`; the
metrics of `manage.py evaluate` (`search.evaluation`), three times:

1. eager index, eager queries      (the reference)
2. eager index, ONNX queries       (a web process switched to the fast backend)
3. ONNX index, ONNX queries        (everything re-embedded with the fast backend)

The adopted backend must move Recall@10 by less than 1 point in 2 and 3.

Then words, side by side (issue 16): the attribute-phrase queries of the same catalogue
(`manage.py make_attribute_queries`, clean and with one typo each) through the plain
MiniLM baseline, dense only, full text only and the served hybrid: mAP@10 and P@10 of each
(`quality.attributes[_typo].<method>.map10`). The out-of-domain set is measured with
`manage.py evaluate` on an imported catalogue (docs/search-quality.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from .common import CACHE_DIR, OUT_DIR, PG_SERVER, ensure_database, setup_django, setup_logging

logger = logging.getLogger("benchmarks.quality")
EVAL_DB = "shop_search_perf_eval"
EVAL_DIR = CACHE_DIR / "eval"


def _evaluate(k: int = 10) -> dict:
    from search import evaluation

    items = evaluation.read_queries(EVAL_DIR / "queries.csv")
    results = evaluation.run_queries(items, k)
    return {
        "all": evaluation.compute_metrics(results),
        **{kind: row for kind, row in evaluation.metrics_by_kind(results).items()},
    }


def _attribute_sets() -> dict:
    """mAP@10 and P@10 of each retrieval method on the demo catalogue's attribute queries."""
    from search import attribute_queries, evaluation

    out_dir = EVAL_DIR / "attributes"
    attribute_queries.write_sets(out_dir, attribute_queries.from_database())
    results = {}
    for name in ("attributes", "attributes-typo"):
        items = evaluation.read_queries(out_dir / f"{name}.csv")
        for method in evaluation.METHODS:
            scores = evaluation.compute_metrics(evaluation.run_queries(items, 10, method=method))
            key = f"quality.{name.replace('-', '_')}.{method}"
            results[f"{key}.map10"], results[f"{key}.p10"] = scores["mAP@10"], scores["P@10"]
    return results


def _reindex() -> None:
    from catalog.models import Product, ProductImage
    from indexing import services

    services.index_catalog(
        product_ids=list(Product.objects.values_list("pk", flat=True)),
        image_ids=list(ProductImage.objects.values_list("pk", flat=True)),
    )


def _drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(backend: str = "onnx", fusion_weights: str | None = None) -> dict:
    os.environ["MEDIA_ROOT"] = str(CACHE_DIR / "eval-media")
    if fusion_weights:
        os.environ["SEARCH_FUSION_WEIGHTS"] = fusion_weights
    _drop_database(EVAL_DB)  # fresh: the active version must be the model configured now
    ensure_database(EVAL_DB)
    setup_django(EVAL_DB)
    from django.core.cache import cache
    from django.core.management import call_command

    from indexing.engine import active_version, model_for_version
    from ml.accel import use_backend

    call_command("load_demo_catalog", verbosity=0)
    if not (EVAL_DIR / "queries.csv").is_file():
        call_command("make_eval_queries", str(EVAL_DIR), verbosity=0)
    version = active_version()
    model = model_for_version(version)
    eager_encoder = getattr(model, "eager_image_encoder", model.image_encoder)

    def set_backend(name: str) -> None:
        model.image_encoder = eager_encoder
        if name != "eager":
            use_backend(model, name)
        cache.clear()  # query embeddings of the other backend must not be reused

    results = {"version": version.version, "database": f"{PG_SERVER}/{EVAL_DB}"}
    set_backend("eager")
    _reindex()
    results["eager_index_eager_queries"] = _evaluate()
    set_backend(backend)
    results[f"eager_index_{backend}_queries"] = _evaluate()
    _reindex()
    results[f"{backend}_index_{backend}_queries"] = _evaluate()
    reference = results["eager_index_eager_queries"]["all"]["R@10"]
    results["quality.recall10_eager"] = reference
    results[f"quality.recall10_{backend}_queries"] = results[f"eager_index_{backend}_queries"]["all"]["R@10"]
    results[f"quality.recall10_{backend}_everything"] = results[f"{backend}_index_{backend}_queries"]["all"]["R@10"]
    results["quality.max_recall10_change_points"] = round(
        100
        * max(
            abs(results[f"quality.recall10_{backend}_queries"] - reference),
            abs(results[f"quality.recall10_{backend}_everything"] - reference),
        ),
        2,
    )
    results.update(_attribute_sets())  # with the adopted backend, as served
    set_backend("eager")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="onnx")
    parser.add_argument("--fusion-weights", default=None, help="e.g. random:0 while the trained fusion is not final")
    args = parser.parse_args()
    setup_logging()
    results = run(args.backend, args.fusion_weights)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    Path(OUT_DIR / "quality.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k.startswith("quality.")}, indent=2))


if __name__ == "__main__":
    main()
