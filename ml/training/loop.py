"""Train the attention fusion on frozen, cached backbone features.

Each step takes a batch of training products; the "documents" are the full products
(catalog photo + product text), and three kinds of shopper queries point at them:

- image only: a shopper-style view of the product photo (sometimes the clean photo);
- text only: a few words of how it looks, the title, or an attribute query such as
  "rose gold ring with diamond" (which every matching product in the batch answers);
- image + text: a view together with one of those texts.

Loss: multi-positive symmetric InfoNCE per query kind (all other products in the batch
are negatives), plus an optional hardest-negative triplet term.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ml.data.giva import GivaProduct
from ml.fusion import AttentionFusion
from ml.training.data import (
    VAL_FRACTION,
    AttributeQuery,
    attribute_key,
    attribute_queries_for,
    description_query,
)
from ml.training.losses import LearnedTemperature, hardest_negative_triplet, multi_positive_info_nce
from ml.training.whitening import set_image_projection

logger = logging.getLogger(__name__)

__all__ = ["TrainSettings", "TrainingData", "train_fusion"]

TITLE_QUERY_RATE = 0.15  # share of text-only queries that are the product's title
GRAD_CLIP_NORM = 5.0


@dataclass
class TrainSettings:
    """Hyper-parameters of one training run (recorded in the checkpoint and model card)."""

    config: str = "effnet-lite2-minilm"
    seed: int = 0
    split_seed: int = 0
    # Seed of the cached shopper views; None: the run seed. Fixing it while changing ``seed``
    # measures the spread of training alone on the same views (the model card's seed rows).
    view_seed: int | None = None
    val_fraction: float = VAL_FRACTION
    train_views: int = 32  # shopper views cached per training product
    text_spans: int = 8  # "how it looks" text queries per training product
    epochs: int = 300
    batch_size: int = 188  # the whole training catalogue: every other product is a negative
    lr: float = 1e-3
    weight_decay: float = 0.5
    warmup_steps: int = 50
    temperature: float = 0.05
    learn_temperature: bool = True
    triplet_weight: float = 0.5
    triplet_margin: float = 0.2
    clean_photo_query_rate: float = 0.15
    # Extra image-path pairs: a view against the product's photo alone (no text), which
    # teaches the image projection invariance to shopper conditions directly.
    photo_pair_weight: float = 2.0
    query_weights: dict[str, float] = field(default_factory=lambda: {"image": 2.0, "text": 1.0, "image+text": 1.0})
    # Share of attribute queries among the texts of text-only and image+text queries.
    text_attribute_rate: float = 0.4
    both_attribute_rate: float = 0.4
    # Modality dropout in product documents: with this probability a training product's
    # document is its photo alone (text token masked), so image-only queries stay close
    # to what the photo says and the text token is what image+text queries add.
    product_text_drop: float = 0.0
    # Text-path pairs: a "how it looks" span against the product's text alone (no photo),
    # the text analogue of the view-vs-photo pairs.
    text_pair_weight: float = 0.0
    # Shrinkage of the closed-form nuisance whitening put into the image projection before
    # training (``ml.training.whitening``); None: the orthogonal initialisation.
    image_whitening: float | None = None
    # Train on every catalogue product (the shipped model); the held-out split then only
    # names which products the in-domain table would have held out.
    all_products: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingData:
    """Everything a step samples from, as tensors (P = training products)."""

    photo: torch.Tensor  # (P, Di) clean catalog photo
    product_text: torch.Tensor  # (P, Dt) full product text
    views: torch.Tensor  # (P, V, Di) shopper views
    spans: torch.Tensor  # (P, S, Dt) "how it looks" texts
    titles: torch.Tensor  # (P, Dt)
    attribute_text: torch.Tensor  # (A, Dt) distinct attribute queries
    attribute_match: torch.Tensor  # (A, P) bool: product p answers attribute query a
    attribute_of_product: list[list[int]]  # queries each product answers

    @property
    def size(self) -> int:
        return self.photo.shape[0]


def text_pools(
    products: Sequence[GivaProduct], spans_per_product: int, seed: int
) -> tuple[list[list[str]], list[str], list[AttributeQuery]]:
    """The query texts of training products: spans per product, titles, attribute queries."""
    rng = np.random.default_rng(seed)
    spans = [[description_query(p, rng) for _ in range(spans_per_product)] for p in products]
    titles = [p.title for p in products]
    attribute_queries: dict[str, AttributeQuery] = {}
    for product in products:
        for query in attribute_queries_for(attribute_key(product)):
            attribute_queries.setdefault(query.text, query)
    return spans, titles, list(attribute_queries.values())


def build_training_data(
    products: Sequence[GivaProduct],
    photo: np.ndarray,
    product_text: np.ndarray,
    views: np.ndarray,
    span_features: np.ndarray,
    title_features: np.ndarray,
    attribute_queries: Sequence[AttributeQuery],
    attribute_features: np.ndarray,
) -> TrainingData:
    keys = [attribute_key(p) for p in products]
    match = np.array([[query.matches(key) for key in keys] for query in attribute_queries], dtype=bool)
    return TrainingData(
        photo=torch.from_numpy(photo),
        product_text=torch.from_numpy(product_text),
        views=torch.from_numpy(views),
        spans=torch.from_numpy(span_features),
        titles=torch.from_numpy(title_features),
        attribute_text=torch.from_numpy(attribute_features),
        attribute_match=torch.from_numpy(match),
        attribute_of_product=[np.flatnonzero(match[:, p]).tolist() for p in range(len(products))],
    )


def _sample_texts(
    data: TrainingData, batch: torch.Tensor, generator: torch.Generator, attribute_rate: float, title_rate: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per product in the batch: a text feature and the products it answers (B, B)."""
    size = len(batch)
    texts = torch.empty(size, data.spans.shape[-1])
    positives = torch.eye(size, dtype=torch.bool)
    choice = torch.rand(size, generator=generator)
    for row, product in enumerate(batch.tolist()):
        if choice[row] < attribute_rate and data.attribute_of_product[product]:
            options = data.attribute_of_product[product]
            query = options[int(torch.randint(len(options), (1,), generator=generator))]
            texts[row] = data.attribute_text[query]
            positives[row] = data.attribute_match[query, batch]
        elif choice[row] < attribute_rate + title_rate:
            texts[row] = data.titles[product]
        else:
            span = int(torch.randint(data.spans.shape[1], (1,), generator=generator))
            texts[row] = data.spans[product, span]
    return texts, positives


def _sample_views(
    data: TrainingData, batch: torch.Tensor, generator: torch.Generator, clean_rate: float
) -> torch.Tensor:
    index = torch.randint(data.views.shape[1], (len(batch),), generator=generator)
    views = data.views[batch, index]
    clean = torch.rand(len(batch), generator=generator) < clean_rate
    return torch.where(clean[:, None], data.photo[batch], views)


def training_loss(
    fusion: AttentionFusion,
    temperature: LearnedTemperature,
    data: TrainingData,
    batch: torch.Tensor,
    settings: TrainSettings,
    generator: torch.Generator,
) -> tuple[torch.Tensor, dict[str, float]]:
    text_mask = None
    if settings.product_text_drop:
        text_mask = torch.rand(len(batch), generator=generator) >= settings.product_text_drop
    products = fusion(data.photo[batch].unsqueeze(1), None, data.product_text[batch], text_mask)
    scale = temperature()
    identity = torch.eye(len(batch), dtype=torch.bool)
    queries: dict[str, tuple[torch.Tensor, ...]] = {}
    views = _sample_views(data, batch, generator, settings.clean_photo_query_rate)
    queries["image"] = (fusion(views.unsqueeze(1), None, None, None), identity)
    texts, positives = _sample_texts(
        data, batch, generator, attribute_rate=settings.text_attribute_rate, title_rate=TITLE_QUERY_RATE
    )
    queries["text"] = (fusion(None, None, texts, None), positives)
    views = _sample_views(data, batch, generator, settings.clean_photo_query_rate)
    texts, _ = _sample_texts(data, batch, generator, attribute_rate=settings.both_attribute_rate, title_rate=0.0)
    queries["image+text"] = (fusion(views.unsqueeze(1), None, texts, None), identity)
    if settings.photo_pair_weight:
        photos_only = fusion(data.photo[batch].unsqueeze(1), None, None, None)
        views = _sample_views(data, batch, generator, 0.0)
        queries["view-photo"] = (fusion(views.unsqueeze(1), None, None, None), identity, photos_only)
    if settings.text_pair_weight:
        texts_only = fusion(None, None, data.product_text[batch], None)
        texts, _ = _sample_texts(data, batch, generator, attribute_rate=0.0, title_rate=0.0)
        queries["span-text"] = (fusion(None, None, texts, None), identity, texts_only)
    total = torch.zeros(())
    parts = {}
    for kind, (vectors, positive, *documents) in queries.items():
        targets = documents[0] if documents else products
        loss = multi_positive_info_nce(vectors, targets, positive, scale)
        if settings.triplet_weight:
            loss = loss + settings.triplet_weight * hardest_negative_triplet(
                vectors, targets, positive, settings.triplet_margin
            )
        parts[kind] = float(loss.detach())
        weight = {"view-photo": settings.photo_pair_weight, "span-text": settings.text_pair_weight}.get(
            kind, settings.query_weights.get(kind, 1.0)
        )
        total = total + weight * loss
    return total, parts


def train_fusion(
    fusion: AttentionFusion, data: TrainingData, settings: TrainSettings, progress: bool = True
) -> dict[str, Any]:
    """Train ``fusion`` in place; returns the loss history and timing."""
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    if settings.image_whitening is not None:
        set_image_projection(fusion, data.photo, data.views, settings.image_whitening)
    temperature = LearnedTemperature(settings.temperature)
    temperature.log_scale.requires_grad_(settings.learn_temperature)
    # Layers the config freezes keep their initialisation (``fusion.frozen``).
    trainable = [p for p in fusion.parameters() if p.requires_grad]
    parameters = trainable + ([temperature.log_scale] if settings.learn_temperature else [])
    decay = [p for p in parameters if p.ndim >= 2]
    no_decay = [p for p in parameters if p.ndim < 2]
    optimiser = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=settings.lr,
    )
    batch_size = min(settings.batch_size, data.size)
    steps_per_epoch = max(1, data.size // batch_size)
    total_steps = settings.epochs * steps_per_epoch

    def schedule(step: int) -> float:
        if step < settings.warmup_steps:
            return (step + 1) / settings.warmup_steps
        progress_ = (step - settings.warmup_steps) / max(1, total_steps - settings.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress_)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    history: list[dict[str, float]] = []
    fusion.train()
    started = time.perf_counter()
    step = 0
    bar = tqdm(range(settings.epochs), desc="training fusion", disable=not progress)
    for epoch in bar:
        order = torch.randperm(data.size, generator=generator)
        epoch_losses = []
        for start in range(0, steps_per_epoch * batch_size, batch_size):
            batch = order[start : start + batch_size]
            loss, parts = training_loss(fusion, temperature, data, batch, settings, generator)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, GRAD_CLIP_NORM)
            optimiser.step()
            scheduler.step()
            step += 1
            epoch_losses.append({"loss": float(loss.detach()), **parts})
        mean = {key: float(np.mean([row[key] for row in epoch_losses])) for key in epoch_losses[0]}
        history.append({"epoch": epoch + 1, **mean, "temperature": float(1 / temperature().detach())})
        bar.set_postfix(loss=f"{mean['loss']:.3f}")
    fusion.eval()
    return {
        "history": history,
        "steps": step,
        "seconds": time.perf_counter() - started,
        "final_temperature": float(1 / temperature().detach()),
    }
