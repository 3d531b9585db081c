"""The search model: image + text encoders and the attention fusion, behind one API.

This module is the contract the web side codes against. Two levels:

- raw backbone features (``image_features``, ``text_features``): what the database keeps
  per photo and per product, so re-fusing after a fusion update needs no backbone pass;
- fused search vectors (``fuse``, ``encode_*``): L2-normalised float32, ``dim``-d, the
  same space for products and queries.

All inference runs under ``torch.inference_mode()`` in eval mode; thread count is left
to the caller (``torch.set_num_threads``).
"""

from __future__ import annotations

import logging
import os
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from ml.constants import (
    DEFAULT_MODEL,
    FUSION_BATCH_SIZE,
    IMAGE_BATCH_SIZE,
    PRODUCT_BATCH_SIZE,
    TEXT_BATCH_SIZE,
)
from ml.encoders.image import ImageEncoder, build_image_encoder
from ml.encoders.text import TextEncoder, build_text_encoder
from ml.errors import ImageDecodeError, ModelLoadError
from ml.fusion import AttentionFusion, build_fusion
from ml.lexical import build_lexical, lexical_dim
from ml.preprocess import to_tensor
from ml.registry import ModelSpec, ResolvedWeights, model_spec, model_version

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MODEL",
    "FusionInput",
    "ImageDecodeError",
    "ModelLoadError",
    "ProductInput",
    "SearchModel",
    "load_fusion_checkpoint",
    "load_model",
    "model_version",
    "save_fusion_checkpoint",
]

T = TypeVar("T")


@dataclass
class FusionInput:
    """What the fusion needs; raw features are what the DB stores per image / per product."""

    image_features: np.ndarray | None = None  # (k, image_feature_dim), k >= 1 photos, or None
    text_features: np.ndarray | None = None  # (text_feature_dim,) or None


@dataclass
class ProductInput:
    """A catalog product as the model sees it: its photos (any number) and its text."""

    images: list[Image.Image] = field(default_factory=list)
    text: str = ""


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    if size < 1:
        raise ValueError("batch_size must be >= 1")
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SearchModel:
    """Encoders + fusion of one named, versioned model."""

    def __init__(
        self,
        spec: ModelSpec,
        image_encoder: ImageEncoder,
        text_encoder: TextEncoder,
        fusion: AttentionFusion,
    ) -> None:
        self.name: str = spec.name
        self.version: str = spec.version
        self.config: Mapping[str, Any] = types.MappingProxyType(spec.config)
        self.dim: int = int(spec.config["fusion"]["dim"])
        self.image_feature_dim: int = int(spec.config["image"]["feature_dim"])
        # A text's raw features are one row: BERT features, then its lexical features.
        self.bert_feature_dim: int = int(spec.config["text"]["feature_dim"])
        self.lexical = build_lexical(spec.config)
        self.text_feature_dim: int = self.bert_feature_dim + (self.lexical.dim if self.lexical else 0)
        self.spec = spec
        # ``ml.accel.use_backend`` may put a faster module here; the eager one stays the reference.
        self.image_encoder: nn.Module = image_encoder.eval()
        self.eager_image_encoder: nn.Module = self.image_encoder
        self.inference_backend = "eager"
        self.text_encoder = text_encoder.eval()
        self.fusion = fusion.eval()

    def __repr__(self) -> str:
        return f"<SearchModel {self.version} dim={self.dim}>"

    # ------------------------------------------------------------ raw features

    def image_features(self, images: Sequence[Image.Image], batch_size: int = IMAGE_BATCH_SIZE) -> np.ndarray:
        """(N, image_feature_dim) float32 raw backbone features, one row per photo."""
        out = [np.zeros((0, self.image_feature_dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in _batches(list(images), batch_size):
                pixels = to_tensor(batch, self.config["preprocess"])
                out.append(self.image_encoder(pixels).float().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def text_features(self, texts: Sequence[str], batch_size: int = TEXT_BATCH_SIZE) -> np.ndarray:
        """(N, text_feature_dim) float32: mean-pooled BERT features [+ lexical features]."""
        texts = [str(text) for text in texts]
        out = [np.zeros((0, self.bert_feature_dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in _batches(texts, batch_size):
                out.append(self.text_encoder.encode(batch).float().numpy())
        dense = np.concatenate(out).astype(np.float32, copy=False)
        if self.lexical is None:
            return dense
        return np.concatenate([dense, self.lexical(texts)], axis=1)

    # ------------------------------------------------------------ fused vectors

    def fuse(self, items: Sequence[FusionInput], batch_size: int = FUSION_BATCH_SIZE) -> np.ndarray:
        """(N, dim) float32 L2-normalised search vectors from stored raw features."""
        out = [np.zeros((0, self.dim), dtype=np.float32)]
        with torch.inference_mode():
            for batch in _batches(list(items), batch_size):
                out.append(self.fusion(**self.fusion_tensors(batch)).float().numpy())
        return np.concatenate(out).astype(np.float32, copy=False)

    def fusion_tensors(self, items: Sequence[FusionInput]) -> dict[str, torch.Tensor | None]:
        """Pad a batch of FusionInputs into the fusion's (features, mask) tensors."""
        size = len(items)
        counts = []
        for index, item in enumerate(items):
            images = item.image_features
            count = 0
            if images is not None:
                images = np.asarray(images)
                if images.ndim == 1:
                    images = images[None, :]
                if images.ndim != 2 or images.shape[1] != self.image_feature_dim:
                    raise ValueError(
                        f"item {index}: image_features must be (k, {self.image_feature_dim}), got {images.shape}"
                    )
                count = images.shape[0]
            if item.text_features is not None and np.asarray(item.text_features).size != self.text_feature_dim:
                raise ValueError(
                    f"item {index}: text_features must be ({self.text_feature_dim},), "
                    f"got {np.asarray(item.text_features).shape}"
                )
            if count == 0 and item.text_features is None:
                raise ValueError(f"item {index} has neither image nor text features")
            counts.append(count)
        max_images = max(counts, default=0)
        tensors: dict[str, torch.Tensor | None] = {
            "image_features": None,
            "image_mask": None,
            "text_features": None,
            "text_mask": None,
        }
        if max_images:
            features = np.zeros((size, max_images, self.image_feature_dim), dtype=np.float32)
            mask = np.zeros((size, max_images), dtype=bool)
            for index, (item, count) in enumerate(zip(items, counts, strict=False)):
                if count:
                    features[index, :count] = np.asarray(item.image_features, dtype=np.float32).reshape(count, -1)
                    mask[index, :count] = True
            tensors["image_features"] = torch.from_numpy(features)
            tensors["image_mask"] = torch.from_numpy(mask)
        if any(item.text_features is not None for item in items):
            text_rows = np.zeros((size, self.text_feature_dim), dtype=np.float32)
            text_mask = np.zeros(size, dtype=bool)
            for index, item in enumerate(items):
                if item.text_features is not None:
                    text_rows[index] = np.asarray(item.text_features, dtype=np.float32).reshape(-1)
                    text_mask[index] = True
            tensors["text_features"] = torch.from_numpy(text_rows)
            tensors["text_mask"] = torch.from_numpy(text_mask)
        return tensors

    def encode_image(self, images: Sequence[Image.Image], batch_size: int = IMAGE_BATCH_SIZE) -> np.ndarray:
        """(N, dim): each image alone as a query (fused, image only)."""
        features = self.image_features(images, batch_size)
        return self.fuse([FusionInput(image_features=row[None, :]) for row in features])

    def encode_text(self, texts: Sequence[str], batch_size: int = TEXT_BATCH_SIZE) -> np.ndarray:
        """(N, dim): each text alone as a query (fused, text only)."""
        features = self.text_features(texts, batch_size)
        return self.fuse([FusionInput(text_features=row) for row in features])

    def encode_query(self, image: Image.Image | None = None, text: str | None = None) -> np.ndarray:
        """(dim,): a shopper query with a photo, a text, or both."""
        text = text.strip() if text else None
        if image is None and not text:
            raise ValueError("a query needs an image or a text")
        item = FusionInput(
            image_features=self.image_features([image]) if image is not None else None,
            text_features=self.text_features([text])[0] if text else None,
        )
        vector: np.ndarray = self.fuse([item])[0]
        return vector

    def encode_product(self, products: Sequence[ProductInput], batch_size: int = PRODUCT_BATCH_SIZE) -> np.ndarray:
        """(N, dim): catalog products from all their photos and their text."""
        return self.fuse(
            [item for batch in _batches(list(products), batch_size) for item in self.product_inputs(batch)]
        )

    def product_inputs(self, products: Sequence[ProductInput]) -> list[FusionInput]:
        """Raw features of products (what to store), as FusionInputs ready for ``fuse``."""
        photos = [image for product in products for image in product.images]
        image_rows = self.image_features(photos) if photos else np.zeros((0, self.image_feature_dim), np.float32)
        texts = [(product.text or "").strip() for product in products]
        with_text = [index for index, text in enumerate(texts) if text]
        text_rows = self.text_features([texts[index] for index in with_text])
        text_by_index = dict(zip(with_text, text_rows, strict=False))
        items, start = [], 0
        for index, product in enumerate(products):
            count = len(product.images)
            items.append(
                FusionInput(
                    image_features=image_rows[start : start + count] if count else None,
                    text_features=text_by_index.get(index),
                )
            )
            start += count
        return items


# ---------------------------------------------------------------- checkpoints

CHECKPOINT_FORMAT = "shop-search-fusion/1"


def save_fusion_checkpoint(
    fusion: AttentionFusion,
    path: str | os.PathLike[str],
    *,
    config: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save only the fusion weights (a few MB) with the architecture they need."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": config["name"],
        "image_feature_dim": int(config["image"]["feature_dim"]),
        "text_feature_dim": int(config["text"]["feature_dim"]),
        "lexical_dim": lexical_dim(config),
        "fusion": {k: v for k, v in config["fusion"].items() if k != "weights"},
        # float16 on disk keeps ml/weights small (a few MB); inference runs in float32.
        "state_dict": {
            k: (v.detach().cpu().to(torch.float16) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in fusion.state_dict().items()
        },
        "extra": dict(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_fusion_checkpoint(fusion: AttentionFusion, path: str | os.PathLike[str]) -> AttentionFusion:
    """Load fusion weights, with errors that name the file and what does not fit."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelLoadError(f"fusion checkpoint not found: {path}") from exc
    except Exception as exc:
        raise ModelLoadError(f"fusion checkpoint {path} is corrupt: {exc}") from exc
    state = payload.get("state_dict") if isinstance(payload, dict) and "format" in payload else payload
    if not isinstance(state, dict):
        raise ModelLoadError(f"fusion checkpoint {path} holds no state dict")
    state = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in state.items()}
    try:
        fusion.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"fusion checkpoint {path} does not fit the config: {exc}") from exc
    return fusion


def build_fusion_with_weights(config: Mapping[str, Any], weights: ResolvedWeights) -> AttentionFusion:
    if weights.kind == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(weights.init_seed())
            return build_fusion(config).eval()
    return load_fusion_checkpoint(build_fusion(config), weights.local_path()).eval()


def load_model(
    name: str | None = None,
    *,
    image_weights: str | os.PathLike[str] | None = None,
    text_weights: str | os.PathLike[str] | None = None,
    fusion_weights: str | os.PathLike[str] | None = None,
    backend: str = "eager",
) -> SearchModel:
    """Build a model by config name (default: the offline effnet-lite2-minilm).

    Weights overrides use the registry's spec syntax (``hub:``, ``package:``,
    ``project:``, ``random:<seed>``, or a path). Raises ModelLoadError naming the file
    when weights are missing or corrupt. Not cached: keep one instance per process.
    ``backend`` runs the image backbone on a faster inference backend (``ml.accel``:
    ``onnx``); ``eager`` is the reference and what training uses.
    """
    spec = model_spec(name, image_weights=image_weights, text_weights=text_weights, fusion_weights=fusion_weights)
    image_encoder = build_image_encoder(spec.config, spec.image)
    text_encoder = build_text_encoder(spec.config, spec.text)
    fusion = build_fusion_with_weights(spec.config, spec.fusion)
    model = SearchModel(spec, image_encoder, text_encoder, fusion)
    if backend != "eager":
        from ml.accel import use_backend

        use_backend(model, backend)
    logger.info("loaded model %s (image backbone: %s)", model.version, model.inference_backend)
    return model
