"""Evaluate a model: out of domain first (another shop's catalogue), then on held-out giva products.

    python -m ml.evaluate --dev-set ../shared/data/jewelry-dev [--config effnet-lite2-minilm]
        [--fusion-weights PATH] [--json OUT] [--backend onnx]

Out of domain (``--dev-set``, see ``ml.training.out_of_domain``): shopper views of the folder's
catalogue photos made by a recipe and a seed that training never uses, its real other views,
attribute texts and photo + text, against the folder mixed with the demo catalogue.

Recall@1/5/10, mAP@10 and NDCG@10 for raw backbone baselines and fused image-only,
text-only and image+text queries, plus precision@10 of attribute text queries; see
``ml.training.evaluation`` for how queries and galleries are built.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ml.accel import BACKENDS, use_backend
from ml.constants import DEFAULT_MODEL, DEFAULT_THREADS
from ml.model import load_model
from ml.training.evaluation import EVAL_VIEW_SEED, EVAL_VIEWS, evaluate_model, format_table
from ml.training.out_of_domain import OOD_VIEW_SEED, OOD_VIEWS, evaluate_out_of_domain, format_out_of_domain


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_MODEL)
    parser.add_argument("--fusion-weights", default=None, help="override the config's fusion checkpoint")
    parser.add_argument("--views", type=int, default=EVAL_VIEWS)
    parser.add_argument("--seed", type=int, default=EVAL_VIEW_SEED, help="evaluation view seed")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument(
        "--dev-set", type=Path, default=None, help="out-of-domain catalogue folder (catalog.csv, views.csv)"
    )
    parser.add_argument("--dev-views", type=int, default=OOD_VIEWS, help="shopper views per out-of-domain product")
    parser.add_argument("--dev-seed", type=int, default=OOD_VIEW_SEED, help="out-of-domain view seed")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="eager", help="image backbone runtime for uncached features"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the metrics here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    model = use_backend(load_model(args.config, fusion_weights=args.fusion_weights), args.backend)
    results: dict[str, Any] = {}
    print(f"\n{model.version}\n")
    if args.dev_set:
        results["out_of_domain"] = evaluate_out_of_domain(
            model, args.dev_set, views=args.dev_views, view_seed=args.dev_seed
        )
        print(format_out_of_domain(results["out_of_domain"]))
    held_out = evaluate_model(model, split_seed=args.split_seed, views=args.views, view_seed=args.seed)
    print("In domain (held-out demo products):\n")
    print(format_table(held_out))
    results = {**held_out, **results}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
