"""A new backbone is a config file: a folder named in SEARCH_MODEL_CONFIG_DIRS is searched
after ml/configs, and the start-up checks read the model from there."""

from __future__ import annotations

import json

from django.core.checks import run_checks

from indexing.checks import check_search_model_config
from ml.registry import list_models, load_config


def _write_config(folder, name: str, dim: int) -> None:
    config = load_config("tiny-test")
    config.pop("name")
    config["fusion"]["dim"] = dim
    (folder / f"{name}.json").write_text(json.dumps(config))


def test_a_model_in_an_extra_config_folder_passes_the_start_up_checks(tmp_path, settings):
    _write_config(tmp_path, "shop-own-backbone", settings.SEARCH_EMBEDDING_DIM)
    settings.SEARCH_MODEL_CONFIG_DIRS = [str(tmp_path)]
    settings.SEARCH_MODEL = "shop-own-backbone"
    assert check_search_model_config(None) == []
    assert "shop-own-backbone" in list_models()
    assert not [message for message in run_checks() if message.id.startswith("search.")]


def test_a_missing_config_folder_or_a_wrong_dimension_is_a_start_up_error(tmp_path, settings):
    settings.SEARCH_MODEL_CONFIG_DIRS = [str(tmp_path / "nope")]
    assert [error.id for error in check_search_model_config(None)] == ["search.E003"]
    _write_config(tmp_path, "shop-wrong-width", settings.SEARCH_EMBEDDING_DIM // 2)
    settings.SEARCH_MODEL_CONFIG_DIRS = [str(tmp_path)]
    settings.SEARCH_MODEL = "shop-wrong-width"
    assert [error.id for error in check_search_model_config(None)] == ["search.E002"]
