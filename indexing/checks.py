"""Start-up checks: the model config can be read (from `ml/configs` or a folder named in
SEARCH_MODEL_CONFIG_DIRS), and its dimension is the one every stored vector has."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from ml.errors import ModelLoadError
from ml.registry import add_model_config_dir, load_config


def add_config_dirs() -> list[CheckMessage]:
    """Register the deployment's extra model config folders (a new backbone is a file)."""
    errors: list[CheckMessage] = []
    for folder in settings.SEARCH_MODEL_CONFIG_DIRS:
        try:
            add_model_config_dir(folder)
        except ModelLoadError as exc:
            errors.append(Error(f"SEARCH_MODEL_CONFIG_DIRS: {exc}", id="search.E003"))
    return errors


@register()
def check_search_model_config(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Read the model's JSON config (cheap; the weights load later, once per process)."""
    errors = add_config_dirs()
    try:
        dim = load_config(settings.SEARCH_MODEL)["fusion"]["dim"]
    except (ModelLoadError, KeyError) as exc:
        return [*errors, Error(f"SEARCH_MODEL={settings.SEARCH_MODEL!r}: {exc}", id="search.E001")]
    if dim != settings.SEARCH_EMBEDDING_DIM:
        errors.append(
            Error(
                f"model config {settings.SEARCH_MODEL!r} embeds into {dim} dimensions, "
                f"but SEARCH_EMBEDDING_DIM is {settings.SEARCH_EMBEDDING_DIM}",
                id="search.E002",
            )
        )
    return errors
