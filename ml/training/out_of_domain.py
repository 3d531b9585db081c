"""Out-of-domain evaluation: another shop's catalogue, searched together with the demo one.

The fusion is trained on the demo catalogue only, so its held-out numbers say little about
a shop whose photographer, lighting and texts are different. This evaluation searches a
catalogue folder (``ml.data.folder``; the development set is ``shared/data/jewelry-dev``)
mixed with the whole demo catalogue as distractors, with four query kinds:

- shopper views: made from the catalogue photos by the evaluation-only recipe
  (``ml.training.augment.unseen_shopper_view``) with a view seed no training run uses;
- other views: the folder's real other photos of the same product (``views.csv``);
- attribute texts: "white gold ring with sapphire" built from the folder's attributes, a
  result is relevant when it has every asked-for attribute (either catalogue);
- photo + text: a shopper view with its product's attribute phrasing.

The raw backbones (image features, MiniLM) are the baseline in the same run. Shopper views
also measure the photo's category prediction (as search makes it: a similarity-weighted
vote of the 10 nearest catalog photos) and the share of the top 5 in the query's category,
as served and with a category-coherence re-rank (what ``search/ranking.py`` could do).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from tqdm import tqdm

from ml.data.folder import CatalogProduct, FolderCatalog, demo_products, load_folder_catalog
from ml.model import FusionInput, SearchModel
from ml.preprocess import load_image
from ml.scoring import served_similarity
from ml.training import features as F
from ml.training.augment import EVAL_RECIPE
from ml.training.metrics import average_precision_at_k, cosine_scores, precision_at_k, recall_at_k

logger = logging.getLogger(__name__)

__all__ = ["OOD_VIEWS", "OOD_VIEW_SEED", "evaluate_out_of_domain", "format_out_of_domain"]

OOD_VIEW_SEED = 104729  # no training run uses it (training: the run seed, 0-99)
OOD_TEXT_SEED = 104730
OOD_VIEWS = 2  # shopper views per catalogue product
CATEGORY_NEIGHBOURS = 10  # as search/query.py predicts a photo's category
CATEGORY_TEMPERATURE = 0.05  # as search/ranking.predict_category
COHERENT_TOP = 5
# Category-coherence re-rank measured for search: score + weight * p(candidate's category),
# applied only when the top category's probability is at least the gate.
COHERENCE_WEIGHTS = (0.04, 0.1, 0.2)
COHERENCE_GATE = 0.5
CALIBRATION_BINS = 10

# Targets of issue 17 on this set.
TARGET_SHOPPER_GAIN = 0.15  # served shopper-view R@1 over the raw backbone
TARGET_OTHER_VIEW_GAIN = 0.05  # other-view R@10 over the raw backbone
TARGET_TEXT_HELPS = 0.05  # photo+text R@1 over served photo-only R@1

RAW = "raw backbones (baseline)"
FUSED = "fused, product vectors"
SERVED = "fused, as served"
Array = NDArray[Any]
Results = dict[str, Any]


@dataclass(frozen=True)
class Gallery:
    """Catalogue + demo distractors: products, raw features and fused vectors."""

    products: list[CatalogProduct]
    own: int  # the first ``own`` products are the evaluated catalogue's
    photo: Array  # (G, Di) raw catalog photo features
    text: Array  # (G, Dt) raw product text features
    fused_products: Array  # (G, D)
    fused_photos: Array  # (G, D)

    @property
    def categories(self) -> Array:
        return np.array([p.category for p in self.products])


def evaluate_out_of_domain(
    model: SearchModel,
    folder: str | Path,
    *,
    views: int = OOD_VIEWS,
    view_seed: int = OOD_VIEW_SEED,
    distractors: Sequence[CatalogProduct] | None = None,
    cache: bool = True,
) -> Results:
    """Every out-of-domain metric of the model card, as a JSON-ready dict.

    ``distractors``: the products mixed into the gallery (default: the demo catalogue).
    """
    catalog = load_folder_catalog(folder)
    gallery = build_gallery(model, catalog.products, distractors, cache)
    rows = {p.sku: i for i, p in enumerate(gallery.products)}

    shopper = folder_view_features(model, catalog.products, views, view_seed, cache)
    shopper_owner = np.repeat(np.arange(len(catalog.products)), views)
    shopper_raw = shopper.reshape(-1, shopper.shape[-1])
    real_views = [view for view in catalog.views if view.sku in rows]
    real_raw = _image_file_features(model, [view.image for view in real_views], "folder-real-views", cache)
    real_owner = np.array([rows[view.sku] for view in real_views], dtype=int)

    results: Results = {
        "model": model.version,
        "folder": catalog.root.name,
        "gallery": {
            "size": len(gallery.products),
            "catalogue": gallery.own,
            "demo_distractors": len(gallery.products) - gallery.own,
        },
        "queries": {
            "shopper_views": len(shopper_raw),
            "views_per_product": views,
            "view_seed": view_seed,
            "recipe": EVAL_RECIPE,
            "other_views": len(real_raw),
        },
    }
    results["shopper_views"] = photo_queries(model, gallery, shopper_raw, shopper_owner)
    results["other_views"] = photo_queries(model, gallery, real_raw, real_owner)
    results["attribute_texts"] = attribute_queries(model, gallery, catalog.products, cache)
    results["photo_text"] = photo_text_queries(model, gallery, catalog, shopper_raw, shopper_owner, cache)
    results["categories"] = category_table(model, gallery, shopper_raw, shopper_owner)
    results["targets"] = targets(results)
    return results


# ---------------------------------------------------------------- features


def build_gallery(
    model: SearchModel, own: Sequence[CatalogProduct], distractors: Sequence[CatalogProduct] | None, cache: bool
) -> Gallery:
    if distractors is None:
        from ml.data import giva

        distractors = demo_products()
        other_photo, other_text = F.catalog_features(model, list(giva.load_products()), cache=cache)
    else:
        other_photo = model.image_features([p.photo() for p in distractors])
        other_text = model.text_features([p.text for p in distractors])
    own_photo = _image_file_features(model, [p.image for p in own if p.image is not None], "folder-photos", cache)
    own_text = F.text_features(model, [p.text for p in own], kind="folder-texts", cache=cache)
    photo = np.concatenate([own_photo, other_photo.reshape(-1, own_photo.shape[1])])
    text = np.concatenate([own_text, other_text.reshape(-1, own_text.shape[1])])
    return Gallery(
        products=[*own, *distractors],
        own=len(own),
        photo=photo,
        text=text,
        fused_products=model.fuse([FusionInput(photo[i][None, :], text[i]) for i in range(len(photo))]),
        fused_photos=_fuse_images(model, photo),
    )


def _image_file_features(model: SearchModel, paths: Sequence[Path], kind: str, cache: bool) -> Array:
    def compute() -> Array:
        images = [load_image(path.read_bytes()) for path in tqdm(paths, desc=kind, leave=False)]
        return model.image_features(images)

    digest = hashlib.sha256(b"".join(path.read_bytes() for path in paths)).hexdigest()[:16]
    parts = {"kind": kind, "files": [p.name for p in paths], "bytes": digest}
    return F.cached_features(model, model.spec.image_fingerprint, parts, compute, cache)


def folder_view_features(
    model: SearchModel, products: Sequence[CatalogProduct], views: int, seed: int, cache: bool = True
) -> Array:
    photos: list[tuple[str, Callable[[], Image.Image]]] = [(p.sku, p.photo) for p in products]
    return F.photo_view_features(model, photos, views, seed, cache, recipe=EVAL_RECIPE)


def _fuse_images(model: SearchModel, features: Array) -> Array:
    return model.fuse([FusionInput(image_features=row[None, :]) for row in features])


# ---------------------------------------------------------------- query kinds


def _recalls(scores: Array, relevant: Array) -> dict[str, float]:
    return {
        "R@1": recall_at_k(scores, relevant, 1),
        "R@5": recall_at_k(scores, relevant, 5),
        "R@10": recall_at_k(scores, relevant, 10),
        "mAP@10": average_precision_at_k(scores, relevant, 10),
    }


def photo_scores(model: SearchModel, gallery: Gallery, raw: Array) -> dict[str, Array]:
    """Query x gallery scores of photo-only queries: raw, product vectors, as served."""
    fused = _fuse_images(model, raw)
    return {
        RAW: cosine_scores(raw, gallery.photo),
        FUSED: fused @ gallery.fused_products.T,
        SERVED: served_similarity(fused @ gallery.fused_photos.T, fused @ gallery.fused_products.T, photo_only=True),
    }


def photo_queries(model: SearchModel, gallery: Gallery, raw: Array, owner: Array) -> Results:
    relevant = np.arange(len(gallery.products))[None, :] == owner[:, None]
    return {name: _recalls(scores, relevant) for name, scores in photo_scores(model, gallery, raw).items()}


def attribute_phrasings(product: CatalogProduct) -> list[str]:
    """What a shopper types about this piece from its attributes, in English."""
    noun = "earrings" if product.category == "earring" else product.category
    texts = [f"{product.metal} {noun}"] if product.metal else [noun]
    if product.gemstone:
        texts.append(f"{noun} with {product.gemstone}")
        if product.metal:
            texts.append(f"{product.metal} {noun} with {product.gemstone}")
    return texts


def _asks(text: str, product: CatalogProduct) -> tuple[str, str | None, str | None]:
    return (
        product.category,
        product.metal if product.metal and product.metal in text else None,
        (product.gemstone if product.gemstone and product.gemstone in text else None),
    )


def attribute_queries(
    model: SearchModel, gallery: Gallery, own: Sequence[CatalogProduct], cache: bool = True
) -> Results:
    """mAP@10 / P@10 of the distinct attribute queries of the catalogue, over the mixed gallery."""
    queries: dict[str, tuple[str, str | None, str | None]] = {}
    for product in own:
        for text in attribute_phrasings(product):
            queries.setdefault(text, _asks(text, product))
    texts = list(queries)
    relevant = np.array(
        [
            [
                p.category == category
                and (metal is None or p.metal == metal)
                and (gemstone is None or p.gemstone == gemstone)
                for p in gallery.products
            ]
            for category, metal, gemstone in queries.values()
        ]
    )
    features = F.text_features(model, texts, kind="folder-attribute-queries", cache=cache)
    bert = slice(0, model.bert_feature_dim)
    fused = model.fuse([FusionInput(text_features=row) for row in features])
    scores = {
        RAW: cosine_scores(features[:, bert], gallery.text[:, bert]),
        SERVED: served_similarity(None, fused @ gallery.fused_products.T, photo_only=False),
    }
    return {
        "count": len(texts),
        "examples": texts[:4],
        **{
            name: {
                "mAP@10": average_precision_at_k(score, relevant, 10),
                "P@10": precision_at_k(score, relevant, 10),
            }
            for name, score in scores.items()
        },
    }


def photo_text_queries(
    model: SearchModel, gallery: Gallery, catalog: FolderCatalog, raw: Array, owner: Array, cache: bool = True
) -> Results:
    """A shopper view with one attribute phrasing of its product ("silver ring with garnet")."""
    rng = np.random.default_rng(OOD_TEXT_SEED)
    texts = []
    for row in owner:
        phrasings = attribute_phrasings(catalog.products[row])
        texts.append(phrasings[int(rng.integers(len(phrasings)))])
    text = F.text_features(model, texts, kind="folder-photo-texts", cache=cache)
    relevant = np.arange(len(gallery.products))[None, :] == owner[:, None]
    bert = slice(0, model.bert_feature_dim)
    both = model.fuse([FusionInput(raw[i][None, :], text[i]) for i in range(len(raw))])
    raw_both = 0.5 * (cosine_scores(raw, gallery.photo) + cosine_scores(text[:, bert], gallery.text[:, bert]))
    return {
        "examples": texts[:4],
        RAW + ", mean of the two cosines": _recalls(raw_both, relevant),
        SERVED: _recalls(served_similarity(None, both @ gallery.fused_products.T, photo_only=False), relevant),
    }


# ---------------------------------------------------------------- categories


def predict_categories(neighbour_scores: Array, categories: Array) -> tuple[Array, list[str]]:
    """(Q, C) probabilities of each category, as search predicts them, and the category names."""
    names = sorted(set(categories.tolist()))
    top = np.argsort(-neighbour_scores, axis=1, kind="stable")[:, :CATEGORY_NEIGHBOURS]
    sims = np.take_along_axis(neighbour_scores, top, axis=1)
    weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / CATEGORY_TEMPERATURE)
    probabilities = np.zeros((len(sims), len(names)))
    index = {name: i for i, name in enumerate(names)}
    for q in range(len(sims)):
        for g, w in zip(top[q], weights[q], strict=True):
            probabilities[q, index[categories[g]]] += w
    return probabilities / probabilities.sum(axis=1, keepdims=True), names


def _coherence(scores: Array, categories: Array, wanted: Array) -> float:
    top = np.argsort(-scores, axis=1, kind="stable")[:, :COHERENT_TOP]
    return float((categories[top] == wanted[:, None]).mean())


def expected_calibration_error(confidence: Array, correct: Array) -> float:
    edges = np.linspace(0, 1, CALIBRATION_BINS + 1)
    error = 0.0
    for low, high in itertools.pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(error)


def category_table(model: SearchModel, gallery: Gallery, raw: Array, owner: Array) -> Results:
    """Category prediction of shopper views and the share of their top 5 in the right category."""
    categories = gallery.categories
    wanted = categories[owner]
    fused = _fuse_images(model, raw)
    served = served_similarity(fused @ gallery.fused_photos.T, fused @ gallery.fused_products.T, photo_only=True)
    table: Results = {}
    for name, neighbours, ranking in (
        (RAW, cosine_scores(raw, gallery.photo), cosine_scores(raw, gallery.photo)),
        (SERVED, fused @ gallery.fused_photos.T, served),
    ):
        probabilities, names = predict_categories(neighbours, categories)
        predicted = np.array(names)[probabilities.argmax(axis=1)]
        confidence = probabilities.max(axis=1)
        correct = predicted == wanted
        relevant = np.arange(len(gallery.products))[None, :] == owner[:, None]
        row: Results = {
            "accuracy": float(correct.mean()),
            "mean confidence": float(confidence.mean()),
            "ECE": expected_calibration_error(confidence, correct),
            "top-5 share": _coherence(ranking, categories, wanted),
        }
        gate = confidence >= COHERENCE_GATE
        boost = probabilities[:, [names.index(c) for c in categories]] * gate[:, None]
        for weight in COHERENCE_WEIGHTS:
            reranked = ranking + weight * boost
            row[f"top-5 share, +{weight} p(category)"] = _coherence(reranked, categories, wanted)
            row[f"R@1, +{weight} p(category)"] = recall_at_k(reranked, relevant, 1)
        row["R@1"] = recall_at_k(ranking, relevant, 1)
        table[name] = row
    return table


# ---------------------------------------------------------------- targets and table


def _target(gain: float, needed: float) -> Results:
    return {"gain": round(gain, 4), "needed": needed, "met": gain >= needed}


def targets(results: Mapping[str, Any]) -> Results:
    shopper, other = results["shopper_views"], results["other_views"]
    text, both = results["attribute_texts"], results["photo_text"]
    out = {
        "served shopper-view R@1 >= raw + 15 points": _target(
            shopper[SERVED]["R@1"] - shopper[RAW]["R@1"], TARGET_SHOPPER_GAIN
        ),
        "served other-view R@10 >= raw + 5 points": _target(
            other[SERVED]["R@10"] - other[RAW]["R@10"], TARGET_OTHER_VIEW_GAIN
        ),
        "photo+text R@1 >= served photo-only R@1 + 5 points": _target(
            both[SERVED]["R@1"] - shopper[SERVED]["R@1"], TARGET_TEXT_HELPS
        ),
    }
    never_worse = {
        "shopper-view R@1": shopper[SERVED]["R@1"] - shopper[RAW]["R@1"],
        "shopper-view R@10": shopper[SERVED]["R@10"] - shopper[RAW]["R@10"],
        "other-view R@10": other[SERVED]["R@10"] - other[RAW]["R@10"],
        "text mAP@10": text[SERVED]["mAP@10"] - text[RAW]["mAP@10"],
    }
    for name, gain in never_worse.items():
        out[f"never worse than raw: {name}"] = _target(gain, 0.0)
    return out


def format_out_of_domain(results: Mapping[str, Any]) -> str:
    q, g = results["queries"], results["gallery"]
    lines = [
        f"Out-of-domain: {results['folder']} ({g['catalogue']} products) + {g['demo_distractors']} demo distractors; "
        f"{q['shopper_views']} shopper views ({q['recipe']} recipe, seed {q['view_seed']}), "
        f"{q['other_views']} real other views, {results['attribute_texts']['count']} attribute texts",
        "",
        "| query | scoring | R@1 | R@5 | R@10 | mAP@10 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for kind, label in (("shopper_views", "shopper view"), ("other_views", "other real view")):
        for name, row in results[kind].items():
            lines.append(
                f"| {label} | {name} | "
                + " | ".join(f"{100 * row[k]:.1f}" for k in ("R@1", "R@5", "R@10", "mAP@10"))
                + " |"
            )
    for name, row in results["photo_text"].items():
        if isinstance(row, dict):
            lines.append(
                f"| photo + text | {name} | "
                + " | ".join(f"{100 * row[k]:.1f}" for k in ("R@1", "R@5", "R@10", "mAP@10"))
                + " |"
            )
    for name in (RAW, SERVED):
        row = results["attribute_texts"][name]
        lines.append(f"| attribute text | {name} | | | P@10 {100 * row['P@10']:.1f} | {100 * row['mAP@10']:.1f} |")
    lines += ["", "Category of shopper views (10-neighbour vote, as search predicts it):", ""]
    first = next(iter(results["categories"].values()))
    keys = list(first)
    lines += ["| scoring | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, row in results["categories"].items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * row[k]:.1f}" for k in keys) + " |")
    lines += ["", "| target | gain (points) | met |", "|---|---:|---|"]
    for name, row in results["targets"].items():
        lines.append(f"| {name} | {100 * row['gain']:+.1f} | {'yes' if row['met'] else 'NO'} |")
    return "\n".join(lines) + "\n"
