"""Evaluate a model on the held-out giva products and print the metrics table.

    python -m ml.evaluate [--config effnet-lite2-minilm] [--fusion-weights PATH] [--json OUT]

Recall@1/5/10, mAP@10 and NDCG@10 for raw backbone baselines and fused image-only,
text-only and image+text queries, plus precision@10 of attribute text queries; see
``ml.training.evaluation`` for how queries and galleries are built.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from ml.constants import DEFAULT_MODEL, DEFAULT_THREADS
from ml.model import load_model
from ml.training.evaluation import EVAL_VIEW_SEED, EVAL_VIEWS, evaluate_model, format_table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=DEFAULT_MODEL)
    parser.add_argument("--fusion-weights", default=None, help="override the config's fusion checkpoint")
    parser.add_argument("--views", type=int, default=EVAL_VIEWS)
    parser.add_argument("--seed", type=int, default=EVAL_VIEW_SEED, help="evaluation view seed")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--json", type=Path, default=None, help="write the metrics here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    model = load_model(args.config, fusion_weights=args.fusion_weights)
    results = evaluate_model(model, split_seed=args.split_seed, views=args.views, view_seed=args.seed)
    print(f"\n{model.version}\n")
    print(format_table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
