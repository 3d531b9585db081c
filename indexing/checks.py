"""Start-up checks: the one fact every part must agree on is the search dimension."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, register

import ml

CONFIG_DIR = Path(ml.__file__).parent / "configs"


@register()
def check_search_model_config(app_configs, **kwargs):
    """Read the model's JSON config (cheap; the weights load later, once per process)."""
    path = CONFIG_DIR / f"{settings.SEARCH_MODEL}.json"
    try:
        dim = json.loads(path.read_text())["fusion"]["dim"]
    except (OSError, KeyError, ValueError) as exc:
        return [Error(f"SEARCH_MODEL={settings.SEARCH_MODEL!r}: cannot read {path}: {exc}", id="search.E001")]
    if dim != settings.SEARCH_EMBEDDING_DIM:
        return [
            Error(
                f"model config {settings.SEARCH_MODEL!r} embeds into {dim} dimensions, "
                f"but SEARCH_EMBEDDING_DIM is {settings.SEARCH_EMBEDDING_DIM}",
                id="search.E002",
            )
        ]
    return []
