"""Frozen backbone features, computed once and cached on disk.

Training only updates the fusion, so every photo, shopper view and text goes through
the backbones once; later runs (other seeds, more steps, evaluation) read the cache in
``.cache/ml/features`` (git-ignored). The cache key holds the fingerprint of the side that
made the features (image: backbone weights, config and preprocessing; text: encoder weights
and config, lexical features included), the augmentation version, the seed and the inputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ml.constants import CACHE_DIR
from ml.data import giva
from ml.data.giva import GivaProduct
from ml.model import SearchModel
from ml.preprocess import load_image
from ml.training.augment import AUGMENT_VERSION, RECIPES, TRAIN_RECIPE

logger = logging.getLogger(__name__)

FEATURE_CACHE_DIR = CACHE_DIR / "features"
VIEW_BATCH_SIZE = 32

__all__ = [
    "cached_features",
    "catalog_features",
    "photo_view_features",
    "product_photo",
    "text_features",
    "view_features",
    "view_rng",
]


def cached_features(
    model: SearchModel, fingerprint: str, parts: dict[str, Any], compute: Callable[[], np.ndarray], cache: bool = True
) -> np.ndarray:
    # ``fingerprint``: of the side that made the features, so a text-side change (say, the
    # lexical width) keeps the cached shopper views, which take minutes to recompute.
    payload = json.dumps({"fingerprint": fingerprint, **parts}, sort_keys=True)
    key = hashlib.sha256(payload.encode()).hexdigest()[:20]
    path = FEATURE_CACHE_DIR / f"{model.name}-{parts.get('kind', 'x')}-{key}.npy"
    if cache and path.is_file():
        try:
            cached: np.ndarray = np.load(path)
            return cached
        except (OSError, ValueError):
            logger.warning("ignoring unreadable feature cache %s", path)
    array = compute().astype(np.float32)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, array)
        tmp.replace(path)
    return array


def product_photo(product: GivaProduct) -> Image.Image:
    """The catalog photo, through the same decoding as any upload."""
    return load_image(giva.product_image_bytes(product))


def view_rng(seed: int, sku: str) -> np.random.Generator:
    """One generator per (seed, product): a product's views do not depend on the split."""
    return np.random.default_rng([seed, int(hashlib.sha256(sku.encode()).hexdigest()[:8], 16)])


def catalog_features(
    model: SearchModel, products: Sequence[GivaProduct], cache: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(P, Di) catalog photo features and (P, Dt) product text features."""
    skus = [product.sku for product in products]

    def photos() -> np.ndarray:
        images = [product_photo(product) for product in tqdm(products, desc="catalog photos", leave=False)]
        return model.image_features(images)

    def texts() -> np.ndarray:
        return model.text_features([giva.product_search_text(product) for product in products])

    return (
        cached_features(model, model.spec.image_fingerprint, {"kind": "photos", "skus": skus}, photos, cache),
        cached_features(
            model,
            model.spec.text_fingerprint,
            {"kind": "product-texts", "skus": skus, "texts": [giva.product_search_text(p) for p in products]},
            texts,
            cache,
        ),
    )


def view_features(
    model: SearchModel,
    products: Sequence[GivaProduct],
    views: int,
    seed: int,
    cache: bool = True,
    recipe: str = TRAIN_RECIPE,
) -> np.ndarray:
    """(P, views, Di) features of shopper-style views of each product photo."""
    return photo_view_features(
        model, [(p.sku, functools.partial(product_photo, p)) for p in products], views, seed, cache, recipe
    )


def photo_view_features(
    model: SearchModel,
    photos: Sequence[tuple[str, Callable[[], Image.Image]]],
    views: int,
    seed: int,
    cache: bool = True,
    recipe: str = TRAIN_RECIPE,
) -> np.ndarray:
    """(P, views, Di) shopper-style views of any catalogue's photos, given as (sku, open photo).

    A product's views depend only on (seed, sku, recipe), never on which other products
    are in the list, so a subset of a cached list can be sliced out of it.
    """
    make_view = RECIPES[recipe]

    def compute() -> np.ndarray:
        out = np.zeros((len(photos), views, model.image_feature_dim), dtype=np.float32)
        pending: list[tuple[int, int, Image.Image]] = []

        def flush() -> None:
            if pending:
                features = model.image_features([image for _, _, image in pending], batch_size=VIEW_BATCH_SIZE)
                for (p, v, _), row in zip(pending, features, strict=False):
                    out[p, v] = row
                pending.clear()

        for p, (sku, open_photo) in enumerate(tqdm(photos, desc=f"shopper views ({recipe}, seed {seed})")):
            rng = view_rng(seed, sku)
            photo = open_photo()
            for v in range(views):
                pending.append((p, v, make_view(photo, rng)))
            if len(pending) >= VIEW_BATCH_SIZE:
                flush()
        flush()
        return out

    parts: dict[str, Any] = {
        "kind": "views",
        "skus": [sku for sku, _ in photos],
        "views": views,
        "seed": seed,
        "augment": AUGMENT_VERSION,
    }
    if recipe != TRAIN_RECIPE:  # training's keys stay as they were, so its cache stays valid
        parts["recipe"] = recipe
    return cached_features(model, model.spec.image_fingerprint, parts, compute, cache)


def text_features(model: SearchModel, texts: Sequence[str], kind: str = "texts", cache: bool = True) -> np.ndarray:
    """(N, Dt) features of arbitrary texts (queries), cached by their content."""
    texts = list(texts)
    return cached_features(
        model, model.spec.text_fingerprint, {"kind": kind, "texts": texts}, lambda: model.text_features(texts), cache
    )
