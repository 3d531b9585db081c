"""Writes ml/weights/MODEL_CARD.md from a training run, so the card never drifts from it."""

from __future__ import annotations

from pathlib import Path

from ml.model import SearchModel
from ml.training.augment import AUGMENT_VERSION, VIEW_SIZE
from ml.training.evaluation import format_table
from ml.training.loop import TrainSettings


def write_model_card(path: Path, model: SearchModel, settings: TrainSettings, training: dict, metrics: dict) -> None:
    config = model.config
    split = metrics["split"]
    hyper = "\n".join(f"| {key} | {value} |" for key, value in settings.to_dict().items())
    text = f"""# Model card: {model.name}

Version: `{model.version}` (config name + hash of the config and all weights).

## What it is

- Image backbone: {config['image']['kind']} `{config['image'].get('variant', '')}`, ImageNet weights from
  `{config['image']['weights']}`, classifier dropped, global-average pooled {config['image']['feature_dim']}-d
  features. Input {config['preprocess']['crop']} px (shorter side resized to {config['preprocess']['resize']}, centre crop).
- Text backbone: all-MiniLM-L6-v2 (`{config['text']['weights']}`), mean pooling over the
  attention mask, {config['text']['feature_dim']}-d, max {config['text']['max_length']} tokens (title and attributes first).
- Fusion (the only trained part, `{Path(config['fusion']['weights']).name if '/' in config['fusion']['weights'] else config['fusion']['weights']}`):
  modality tokens (each photo, the text) projected to width {config['fusion']['width']}, a learned
  fusion query attends over them ({config['fusion']['heads']} heads, learned W_Q/W_K/W_V, key-padding mask
  for missing photos/text), projected to the {config['fusion']['dim']}-d search space, L2-normalised.
  Backbones are frozen.

## Data and split

The {split['train'] + split['val']} products of the `giva-databricks` package (one studio photo each, title,
LLM description, category in Ring/Earring/Bangle/Bracelet/Necklace/Pendant, metal and stone
attributes). Split by product, stratified by category, seed {split['seed']}: {split['train']} training products,
{split['val']} held-out products never seen in training (skus in `{model.name}.split.json`).

## Training

Frozen backbone features are cached in `.cache/ml/features`. Per step, a batch of training
products; the documents are the full products (catalog photo + product text) and three query
kinds point at them: image only (a shopper-style view; {int(settings.clean_photo_query_rate * 100)}% the clean photo), text only
(a 5-10 word span of the visual description, the title, or an attribute query such as
"rose gold ring with diamond"), and image + text (a view with a span or attribute query).
A fourth pair kind, weighted {settings.photo_pair_weight}, matches a view against the product's photo alone,
to teach the image path invariance to shopper conditions directly (it also trains the photo-only
vectors that search serves next to the product vectors).{_optional_terms(settings)}
Loss: multi-positive symmetric InfoNCE (an attribute query's positives are all products in the
batch with those attributes; learned temperature) + {settings.triplet_weight} x hardest-negative triplet
(margin {settings.triplet_margin}), weighted per query kind ({settings.query_weights}). The batch is the whole
training catalogue, so every other product is a negative. AdamW, cosine schedule with warm-up.
Regularisation for a 188-product catalogue: dropout {config['fusion'].get('image_dropout', 0)} on the raw image features and
{config['fusion'].get('text_dropout', 0)} on the text features, weight decay {settings.weight_decay}, and an orthogonal
(geometry-preserving) initialisation of the value path so training starts from the backbones'
own similarity. Weights are stored as float16 (inference in float32).

Shopper-style views (Pillow/numpy, `ml/training/augment.py`, version {AUGMENT_VERSION}, {VIEW_SIZE} px): white studio
background replaced by a surface (skin, wood, fabric, marble colours; solid, gradient or texture)
with a soft mask, zoom-out with off-centre padding, rotation (+-35 deg, sometimes 90/180/270),
random resized crop (45-100 % area, aspect 3:4-4:3), horizontal flip, brightness/contrast/
saturation, white balance and gamma jitter, Gaussian blur, sensor noise, JPEG recompression
(quality 30-90). {settings.train_views} views per training product (seed {settings.seed}).

| hyper-parameter | value |
|---|---|
{hyper}

Training time on {training['threads']} CPU threads: {training['train_seconds']} s for {training['steps']} steps
(feature caching {training['feature_seconds']} s on the first run; cached afterwards). Loss
{training['loss_first_epoch']:.3f} (first epoch) -> {training['loss_last_epoch']:.3f} (last epoch); final temperature
{training['final_temperature']:.4f}.

## Evaluation (`python -m ml.evaluate`)

Queries come from the {split['val']} held-out products only: {metrics['queries']['views_per_product']} shopper-style views per product
made with the fixed evaluation seed {metrics['queries']['view_seed']} (training uses other seeds), and per view a
5-10 word "how it looks" text (seed {metrics['queries']['text_seed']}). Exact cosine search against the fused product
vectors (catalog photo + product text). Primary gallery: the held-out products; second gallery:
all products (training products as extra distractors). Baselines: raw backbone image features
(query view vs catalog photo) and raw MiniLM text features (query text vs product text).
Attribute queries ("yellow gold ring with diamond", "earrings with pearl", ...) are built from
the held-out products' attributes; a result is relevant when it has every asked-for attribute;
P@10 (capped) divides by min(10, number of relevant products).

The rows "fused, as served: max over photo and product vectors" score a product the way
search serves it (`search/indexing.py`, `search/query.py`, `search/ranking.similarity`): every
catalog photo also has its own photo-only fused vector, and a query's similarity to a product is
the max of its cosine to the best photo vector and to the product vector (one photo per product
here). Re-ranking signals on top of that similarity (category, text match) are not included.
The issue's targets are reported for both the product-vector rows and the served rows.

{format_table(metrics)}

## Status against the targets

{_status(metrics)}

## Limits

- One studio photo per product and 236 products: the fusion is small and trained on a small
  catalogue; held-out numbers on {split['val']} products have wide confidence intervals (one query is
  {100 / metrics['queries']['count']:.1f} points of R@1).
- Shopper views are synthetic (augmented studio photos), not real customer photos.
- The backbones are frozen ImageNet / sentence-similarity models; fine-tuning them is out of scope.
"""
    path.write_text(text)


def _optional_terms(settings: TrainSettings) -> str:
    parts = []
    if getattr(settings, "text_pair_weight", 0):
        parts.append(f"span-vs-product-text pairs (weight {settings.text_pair_weight})")
    if getattr(settings, "product_text_drop", 0):
        parts.append(f"text-token dropout {settings.product_text_drop} in product documents")
    return (" Also: " + "; ".join(parts) + ".") if parts else ""


def _status(metrics: dict) -> str:
    missed = [name for name, target in metrics["targets"].items() if not target["met"]]
    head = (
        "All targets are met on the held-out gallery." if not missed else
        "Missed on the held-out gallery: " + "; ".join(
            f"{name} ({100 * metrics['targets'][name]['value']:+.1f} points)" for name in missed
        ) + "."
    )
    return head + """

History (held-out R@1, image-only / image+text; product-vector rows unless "served"): a plain
fusion trained with InfoNCE gave 77 / 83 (below the raw backbone's 81); weighting image-only
queries x2-3 and the whole catalogue as one batch: 80-85 / 85-87; dropout on the raw features:
88-90 / 89; view-vs-photo pairs: 88 / 89; orthogonal init of the value path: 90 / 93 (16 views);
32 views per product: 88.8 / 92.5 (served 91.2 / 92.1), the previous checkpoint.

Second round (one run each, seed 0; one query is 0.4 points, and run-to-run spread is about
+-1.5 points; "served" = max over photo and product vectors):

| change | image-only | image+text | served image-only | served image+text | text-only |
|---|---:|---:|---:|---:|---:|
| previous checkpoint | 88.8 | 92.5 | 91.2 | 92.1 | 41.7 |
| image+text queries weighted 2, spans only (no attribute texts) | 89.2 | 90.8 | 90.8 | 92.5 | 45.0 |
| + text-token dropout 0.3 in product documents | 87.1 | 91.2 | 89.6 | 92.5 | 36.2 |
| span-vs-product-text pairs (weight 1) | 86.7 | 91.7 | 87.1 | 92.1 | 46.7 |
| + 32 spans per product | 87.5 | 91.2 | 87.9 | 92.9 | 50.4 |
| + 8 heads | 87.9 | 92.1 | 87.9 | 92.9 | 50.0 |
| 8 heads alone | 87.1 | 92.5 | 90.8 | 93.3 | 40.4 |
| view-vs-photo pairs weighted 4 (was 2) | 89.2 | 92.5 | 92.1 | 91.7 | 39.6 |
| view-vs-photo 4 + span-vs-text pairs + 32 spans | 86.7 | 91.7 | 87.1 | 92.1 | 49.2 |
| view-vs-photo 6, image queries weighted 3 | 88.8 | 92.5 | 91.7 | 92.9 | 35.8 |
| view-vs-photo 4, 450 epochs | 89.6 | 91.7 | 92.1 | 92.5 | 38.8 |
| view-vs-photo 4, 8 heads | 87.9 | 92.9 | 91.2 | 93.3 | 41.2 |
| view-vs-photo 4, image+text weighted 2, spans only | 89.2 | 91.7 | 91.7 | 92.1 | 45.0 |

(Trained in memory with the same code and cached features, evaluated in float32; the settings
are `TrainSettings` fields: `query_weights`, `both_attribute_rate`, `product_text_drop`,
`text_pair_weight`, `text_spans`, `photo_pair_weight`, `epochs`, and the config's fusion
`heads`.) None of them is better on the targets without costing image+text or text-only R@1
beyond run-to-run noise, so the checkpoint was kept.

Why the +5 points of image+text over image-only is out of reach with these backbones: for each
run above, the best *linear* mix of the fused image score (view vs photo-only vector) and the
fused text score (span vs text-only vector, 49-56 R@1; raw MiniLM gives 54), with the mixing
weight tuned on the evaluation queries themselves, reaches only 94.2-95.8 R@1. Whenever the
image path is at 90.4 R@1 or better, that oracle adds +2.5 to +4.6 points, never +5; a fused
vector's cosine is (roughly) such a mix, so once image-only is >= 90.8 the text of a 5-10 word
description span cannot add 5 points. Moving it needs a stronger text signal (a better or
fine-tuned text encoder, lexical matching in the ranker, multiple photos per product), not more
fusion training.
Span-vs-text pairs and more spans raise fused text-only R@1 (42 -> 50) but cost the image path
3-4 points, since both share the value and output projections."""


def main(argv: list[str] | None = None) -> None:
    """Rewrite MODEL_CARD.md from the committed checkpoint and metrics JSON (no training).

    ``--evaluate`` first re-runs the held-out evaluation on the committed checkpoint and
    updates the metrics in ``<config>.metrics.json`` (settings and training time are kept).
    """
    import argparse
    import json

    import torch

    from ml.constants import DEFAULT_MODEL, WEIGHTS_DIR
    from ml.model import load_model
    from ml.training.evaluation import evaluate_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--evaluate", action="store_true", help="re-run the evaluation first")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = WEIGHTS_DIR / f"{DEFAULT_MODEL}.metrics.json"
    saved = json.loads(path.read_text())
    model = load_model(DEFAULT_MODEL)
    settings = TrainSettings(**saved["settings"])
    if args.evaluate:
        fresh = evaluate_model(model, split_seed=settings.split_seed, val_fraction=settings.val_fraction)
        saved = {"version": model.version, "settings": settings.to_dict(), "training": saved["training"], **fresh}
        path.write_text(json.dumps(saved, indent=1) + "\n")
    metrics = {key: saved[key] for key in ("split", "queries", "galleries", "targets")}
    write_model_card(WEIGHTS_DIR / "MODEL_CARD.md", model, settings, saved["training"], metrics)


if __name__ == "__main__":
    main()
