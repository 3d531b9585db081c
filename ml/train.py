"""Train the fusion of a model config on frozen backbone features of the giva products.

    python -m ml.train --config effnet-lite2-minilm [--epochs 300] [--seed 0] [--view-seed 0]

Writes ``ml/weights/<config>.fusion.pt`` (fusion weights only), ``<config>.split.json``,
``<config>.metrics.json`` and ``MODEL_CARD.md``. Backbone features are cached in
``.cache/ml/features``, so a second run only trains (seconds to a few minutes on CPU).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.constants import DEFAULT_MODEL, DEFAULT_THREADS, WEIGHTS_DIR
from ml.data import giva
from ml.data.giva import GivaProduct
from ml.model import SearchModel, load_model, save_fusion_checkpoint
from ml.training import features as F
from ml.training.data import split_products
from ml.training.evaluation import evaluate_model, format_table
from ml.training.loop import TrainingData, TrainSettings, build_training_data, text_pools, train_fusion
from ml.training.model_card import write_model_card
from ml.training.out_of_domain import evaluate_out_of_domain, format_out_of_domain

logger = logging.getLogger("ml.train")

VIEW_CHUNK = 8  # shopper views per product per cached chunk (of every catalogue product)
TRAIN_TEXT_SEED_OFFSET = 100  # text queries of training use seed + this; views use seed
VIEW_CHUNK_SEED_STRIDE = 1000  # chunk c of view seed s is cached under seed s * stride + c


def run(
    settings: TrainSettings,
    output_dir: Path = WEIGHTS_DIR,
    threads: int = DEFAULT_THREADS,
    progress: bool = True,
    dev_set: Path | None = None,
) -> dict[str, Any]:
    """Cache features, train, save the checkpoint, evaluate, write the model card.

    With ``settings.all_products`` the shipped fusion is trained on every demo product; the
    in-domain table then comes from a second fusion, trained the same way on the split's
    training products only (its held-out products are still unseen), and ``dev_set`` (an
    out-of-domain catalogue folder) tells how the shipped one generalises.
    """
    torch.set_num_threads(threads)
    started = time.perf_counter()
    base = load_model(settings.config, fusion_weights=f"random:{settings.seed}")
    products = list(giva.load_products())
    train_skus, val_skus = split_products(products, settings.val_fraction, settings.split_seed)
    shipped_skus = [p.sku for p in products] if settings.all_products else train_skus
    data = training_data(base, products, shipped_skus, settings)
    features_seconds = time.perf_counter() - started
    report = train_fusion(base.fusion, data, settings, progress=progress)

    output_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = output_dir / f"{settings.config}.fusion.pt"
    save_fusion_checkpoint(
        base.fusion,
        checkpoint,
        config=base.config,
        extra={"settings": settings.to_dict(), "train_products": len(shipped_skus)},
    )
    trained = load_model(settings.config, fusion_weights=checkpoint)
    measured = trained
    if settings.all_products:
        measured = load_model(settings.config, fusion_weights=f"random:{settings.seed}")
        train_fusion(
            measured.fusion, training_data(measured, products, train_skus, settings), settings, progress=progress
        )
    metrics = evaluate_model(measured, split_seed=settings.split_seed, val_fraction=settings.val_fraction)
    metrics["in_domain_model"] = "trained on the split's training products only" if settings.all_products else "shipped"
    if dev_set is not None:
        metrics["out_of_domain"] = evaluate_out_of_domain(trained, dev_set)
    training = {
        "feature_seconds": round(features_seconds, 1),
        "train_seconds": round(report["seconds"], 1),
        "total_seconds": round(time.perf_counter() - started, 1),
        "steps": report["steps"],
        "final_temperature": report["final_temperature"],
        "loss_first_epoch": report["history"][0]["loss"],
        "loss_last_epoch": report["history"][-1]["loss"],
        "threads": threads,
        "train_products": len(shipped_skus),
    }
    split = {
        "seed": settings.split_seed,
        "val_fraction": settings.val_fraction,
        "train": train_skus,
        "validation": val_skus,
    }
    save_run(output_dir, trained, settings, training, metrics, split)
    return {"version": trained.version, "training": training, "metrics": metrics, "checkpoint": str(checkpoint)}


def training_data(
    base: SearchModel, products: Sequence[GivaProduct], train_skus: Sequence[str], settings: TrainSettings
) -> TrainingData:
    """Frozen backbone features of the training products and of their queries (cached)."""
    index = {p.sku: i for i, p in enumerate(products)}
    rows = [index[sku] for sku in train_skus]
    train = [products[row] for row in rows]
    photo, product_text = F.catalog_features(base, products)
    views = train_views(base, products, settings)[rows]
    spans, titles, attribute_queries = text_pools(train, settings.text_spans, settings.seed + TRAIN_TEXT_SEED_OFFSET)
    span_features = F.text_features(base, [t for row in spans for t in row], kind="train-spans")
    span_features = span_features.reshape(len(train), settings.text_spans, -1)
    title_features = F.text_features(base, titles, kind="train-titles")
    attribute_features = F.text_features(base, [q.text for q in attribute_queries], kind="train-attributes")
    data = build_training_data(
        train,
        photo[rows],
        product_text[rows],
        views,
        span_features,
        title_features,
        attribute_queries,
        attribute_features,
    )
    logger.info(
        "training on %d products, %d views each, %d attribute queries",
        data.size,
        views.shape[1],
        len(attribute_queries),
    )
    return data


def train_views(base: SearchModel, products: Sequence[GivaProduct], settings: TrainSettings) -> np.ndarray:
    """(P, train_views, Di) for every catalogue product; the caller takes the training rows.

    Views come in cached chunks with their own seeds, so raising --views reuses the cache, and
    a product's views do not depend on the split, so every split and --all-products share one.
    """
    view_seed = settings.seed if settings.view_seed is None else settings.view_seed
    chunks = range(-(-settings.train_views // VIEW_CHUNK))
    return np.concatenate(
        [F.view_features(base, products, VIEW_CHUNK, view_seed * VIEW_CHUNK_SEED_STRIDE + chunk) for chunk in chunks],
        axis=1,
    )[:, : settings.train_views]


def save_run(
    output_dir: Path,
    trained: SearchModel,
    settings: TrainSettings,
    training: dict[str, Any],
    metrics: dict[str, Any],
    split: dict[str, Any],
) -> None:
    """The split and metrics JSON next to the checkpoint; the model card for the shipped model."""
    (output_dir / f"{settings.config}.split.json").write_text(json.dumps(split, indent=1) + "\n")
    (output_dir / f"{settings.config}.metrics.json").write_text(
        json.dumps(
            {"version": trained.version, "settings": settings.to_dict(), "training": training, **metrics}, indent=1
        )
        + "\n"
    )
    if output_dir == WEIGHTS_DIR and settings.config == DEFAULT_MODEL:
        write_model_card(output_dir / "MODEL_CARD.md", trained, settings, training, metrics)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = TrainSettings()
    parser.add_argument("--config", default=DEFAULT_MODEL)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--view-seed", type=int, default=None, help="seed of the shopper views (default: --seed)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--views", type=int, default=defaults.train_views, help="shopper views per training product")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument("--output-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--all-products", action="store_true", help="train the shipped fusion on every demo product")
    parser.add_argument("--image-whitening", type=float, default=defaults.image_whitening, help="shrinkage; none: off")
    parser.add_argument("--dev-set", type=Path, default=None, help="out-of-domain catalogue folder to evaluate on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = TrainSettings(
        config=args.config,
        epochs=args.epochs,
        seed=args.seed,
        view_seed=args.view_seed,
        batch_size=args.batch_size,
        lr=args.lr,
        train_views=args.views,
        all_products=args.all_products,
        image_whitening=args.image_whitening,
    )
    result = run(settings, args.output_dir, threads=args.threads, dev_set=args.dev_set)
    print(
        f"\n{result['version']}  trained in {result['training']['train_seconds']} s "
        f"(features {result['training']['feature_seconds']} s)\n"
    )
    if "out_of_domain" in result["metrics"]:
        print(format_out_of_domain(result["metrics"]["out_of_domain"]))
    print(format_table(result["metrics"]))


if __name__ == "__main__":
    main()
