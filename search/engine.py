"""The model in this process, and which model version serves search.

Models load once per process (a web worker or a Celery worker) and stay warm; a version
row in the database names the model that produced its vectors, so a process can load
the model of any version it is asked to serve or backfill.
"""

from __future__ import annotations

import json
import logging
import threading
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import ModelVersion
from .vector_index import ensure_hnsw_indexes

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_models: dict[tuple, object] = {}


def _configure_torch() -> None:
    import torch

    # Sized to the machine: a worker that oversubscribes 2 cores runs slower, not faster.
    if torch.get_num_threads() != settings.TORCH_THREADS:
        torch.set_num_threads(settings.TORCH_THREADS)


def load_search_model(name: str | None = None, weights: dict | None = None):
    """The ml.SearchModel for a config name and weight overrides, loaded once per process."""
    from ml.model import load_model

    name = name or settings.SEARCH_MODEL
    if weights is None:
        weights = configured_weights() if name == settings.SEARCH_MODEL else {}
    key = (name, json.dumps(weights, sort_keys=True))
    with _lock:
        if key not in _models:
            _configure_torch()
            started = time.perf_counter()
            model = load_model(name, **weights)
            logger.info("loaded model %s in %.1fs", model.version, time.perf_counter() - started)
            if model.dim != settings.SEARCH_EMBEDDING_DIM:
                raise RuntimeError(
                    f"model {model.version} embeds into {model.dim} dimensions but "
                    f"SEARCH_EMBEDDING_DIM is {settings.SEARCH_EMBEDDING_DIM}"
                )
            _models[key] = model
        return _models[key]


def configured_weights() -> dict:
    weights = {
        "image_weights": settings.SEARCH_IMAGE_WEIGHTS,
        "text_weights": settings.SEARCH_TEXT_WEIGHTS,
        "fusion_weights": settings.SEARCH_FUSION_WEIGHTS,
    }
    return {key: value for key, value in weights.items() if value}


def model_for_version(version: ModelVersion):
    return load_search_model(version.model_name, version.weights)


def register_version(model, *, weights: dict | None = None, state: str = ModelVersion.State.BACKFILLING) -> ModelVersion:
    version, created = ModelVersion.objects.get_or_create(
        version=model.version,
        defaults={"model_name": model.name, "dim": model.dim, "state": state, "weights": weights or {}},
    )
    if created:
        logger.info("registered model version %s (%s)", version.version, version.state)
    ensure_hnsw_indexes(version.pk)
    return version


def active_version(*, create: bool = True) -> ModelVersion | None:
    """The version that serves search; on a new install, the configured model becomes it."""
    version = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
    if version is not None or not create:
        return version
    model = load_search_model()
    with transaction.atomic():
        version = register_version(model, weights=configured_weights())
        if not ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exists():
            version.state = ModelVersion.State.ACTIVE
            version.activated_at = timezone.now()
            version.save(update_fields=["state", "activated_at"])
    return ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)


def versions_to_index() -> list[ModelVersion]:
    """New embeddings go to the active version and to any version being backfilled."""
    active = active_version()
    others = ModelVersion.objects.filter(state=ModelVersion.State.BACKFILLING).exclude(pk=active.pk)
    return [active, *others]
