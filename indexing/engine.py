"""The model in this process, and which model version serves search.

Models load once per process (a web worker or a Celery worker) and stay warm; a version
row in the database names the model that produced its vectors, so a process can load
the model of any version it is asked to serve or backfill.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Literal, overload

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import ModelVersion
from .vector_index import ensure_hnsw_indexes

if TYPE_CHECKING:
    from ml.model import SearchModel

logger = logging.getLogger(__name__)
_lock = threading.Lock()
# Active + one being backfilled is the normal most; a third covers a rollback. Older
# models are dropped so a long-lived process does not keep every retired model in memory.
MODEL_CACHE_SIZE = 3
_models: OrderedDict[tuple, SearchModel] = OrderedDict()
WEIGHT_KEYS = ("image_weights", "text_weights", "fusion_weights")


def _configure_torch() -> None:
    import torch

    # Sized to the machine: a worker that oversubscribes 2 cores runs slower, not faster.
    if torch.get_num_threads() != settings.TORCH_THREADS:
        torch.set_num_threads(settings.TORCH_THREADS)
    with contextlib.suppress(RuntimeError):  # only allowed before the first parallel op
        torch.set_num_interop_threads(1)


def load_search_model(name: str | None = None, weights: dict | None = None) -> SearchModel:
    """The ml.SearchModel for a config name and weight overrides, loaded once per process."""
    from ml.model import load_model

    name = name or settings.SEARCH_MODEL
    if weights is None:
        weights = configured_weights() if name == settings.SEARCH_MODEL else {}
    weights = {key: value for key, value in weights.items() if key in WEIGHT_KEYS and value}
    key = (name, json.dumps(weights, sort_keys=True))
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
        _configure_torch()
        started = time.perf_counter()
        model = load_model(name, backend=settings.SEARCH_INFERENCE_BACKEND, **weights)
        logger.info("loaded model %s in %.1fs", model.version, time.perf_counter() - started)
        if model.dim != settings.SEARCH_EMBEDDING_DIM:
            raise RuntimeError(
                f"model {model.version} embeds into {model.dim} dimensions but "
                f"SEARCH_EMBEDDING_DIM is {settings.SEARCH_EMBEDDING_DIM}"
            )
        _models[key] = model
        while len(_models) > MODEL_CACHE_SIZE:
            _models.popitem(last=False)
        return model


def loaded_model_versions() -> list[str]:
    """The versions of the models this process holds (gunicorn loads one before serving)."""
    with _lock:
        return [model.version for model in _models.values()]


def configured_weights() -> dict:
    weights = {
        "image_weights": settings.SEARCH_IMAGE_WEIGHTS,
        "text_weights": settings.SEARCH_TEXT_WEIGHTS,
        "fusion_weights": settings.SEARCH_FUSION_WEIGHTS,
    }
    return {key: value for key, value in weights.items() if value}


def model_for_version(version: ModelVersion) -> SearchModel:
    """The model that produced `version`'s vectors; refuses weights that changed on disk
    since, which would otherwise write vectors of another space under this version."""
    from ml.errors import ModelLoadError

    model = load_search_model(version.model_name, version.weights)
    if model.version != version.version:
        raise ModelLoadError(
            f"model version {version.version} was registered with {version.model_name} {version.weights}, "
            f"but those weights now load as {model.version}: restore the weights, or register the new "
            f"ones with `manage.py model_upgrade`"
        )
    return model


def register_version(
    model, *, weights: dict | None = None, state: str = ModelVersion.State.BACKFILLING
) -> ModelVersion:
    """The version row of a loaded model (created once) with its partial HNSW indexes."""
    version, created = ModelVersion.objects.get_or_create(
        version=model.version,
        defaults={"model_name": model.name, "dim": model.dim, "state": state, "weights": weights or {}},
    )
    if created:
        logger.info("registered model version %s (%s)", version.version, version.state)
    ensure_hnsw_indexes(version.pk)
    return version


@overload
def active_version(*, create: Literal[True] = True) -> ModelVersion: ...
@overload
def active_version(*, create: bool) -> ModelVersion | None: ...


def active_version(*, create: bool = True) -> ModelVersion | None:
    """The version that serves search; on a new install, the configured model becomes it."""
    version = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
    if version is not None or not create:
        return version
    model = load_search_model()
    try:
        with transaction.atomic():
            version = register_version(model, weights=configured_weights())
            if not ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exists():
                version.state = ModelVersion.State.ACTIVE
                version.activated_at = timezone.now()
                version.save(update_fields=["state", "activated_at"])
    except IntegrityError:
        # Another process (the web, the worker) made its own first version active first.
        logger.info("another process activated the first model version")
    return ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)


def versions_to_index() -> list[ModelVersion]:
    """New embeddings go to the active version and to any version being backfilled."""
    active = active_version()
    others = ModelVersion.objects.filter(state=ModelVersion.State.BACKFILLING).exclude(pk=active.pk).order_by("pk")
    return [active, *others]


def warm_up_for_indexing() -> str:
    """Load and run the models this process will index with, once, before the first
    task; returns a line for the worker log saying what it runs with."""
    import torch
    from PIL import Image

    versions = versions_to_index()
    for version in versions:
        model = model_for_version(version)
        model.image_features([Image.new("RGB", (64, 64), "white")])
        model.text_features(["warm-up"])
    names = ", ".join(f"{v.version} ({v.state})" for v in versions)
    return (
        f"model {settings.SEARCH_MODEL}; versions {names}; torch threads {torch.get_num_threads()}; "
        f"image batch {settings.EMBED_IMAGE_BATCH_SIZE}; text batch {settings.EMBED_TEXT_BATCH_SIZE}"
    )
