"""Encoders are built by the kind a config names; a new backbone family or folder of configs
needs no change to the code that loads models."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from ml import registry
from ml.encoders.image import IMAGE_ENCODERS, EfficientNetLiteImageEncoder, build_image_encoder
from ml.encoders.text import TEXT_ENCODERS, build_text_encoder
from ml.errors import ModelLoadError
from ml.model import load_model
from ml.registry import add_model_config_dir, list_models, load_config, model_version, resolve_weights

# The version string of the default model, stored next to every vector in every shop's
# database: the kind registry must not change it.
DEFAULT_MODEL_VERSION = "effnet-lite2-minilm@0af8beb12488"

TINY_VIT = {
    "model_type": "vit",
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
}
TINY_TEXT_TRANSFORMER = {
    "model_type": "bert",
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
}


@pytest.fixture
def config_dirs(monkeypatch):
    """Folders added in a test are forgotten after it."""
    monkeypatch.setattr(registry, "_EXTRA_CONFIG_DIRS", [])


def _tiny_config(**image: object) -> dict:
    config = load_config("tiny-test")
    config["image"].update(image)
    return config


def test_registered_kinds_are_the_documented_ones():
    assert IMAGE_ENCODERS.kinds() == ["efficientnet_lite", "resnet", "transformers"]
    assert TEXT_ENCODERS.kinds() == ["bert", "transformers"]


def test_unknown_image_kind_raises_model_load_error_listing_the_known_kinds():
    config = _tiny_config(kind="vgg")
    with pytest.raises(ModelLoadError, match=r"unknown image encoder kind 'vgg' \(known: efficientnet_lite, resnet"):
        build_image_encoder(config, resolve_weights("random:1"))


def test_unknown_text_kind_raises_model_load_error_listing_the_known_kinds():
    config = load_config("tiny-test")
    config["text"]["kind"] = "word2vec"
    with pytest.raises(ModelLoadError, match=r"unknown text encoder kind 'word2vec' \(known: bert, transformers\)"):
        build_text_encoder(config, resolve_weights("random:2"))


def test_shipped_spelling_efficientnet_lite_is_an_alias_of_efficientnet_lite():
    assert load_config("effnet-lite2-minilm")["image"]["kind"] == "efficientnet-lite"
    assert IMAGE_ENCODERS.canonical("efficientnet-lite") == "efficientnet_lite"
    assert IMAGE_ENCODERS.builder("efficientnet-lite") is IMAGE_ENCODERS.builder("efficientnet_lite")
    config = _tiny_config(kind="efficientnet-lite", variant="efficientnet-lite0", feature_dim=1280)
    encoder = build_image_encoder(config, resolve_weights("random:1"))
    assert isinstance(encoder, EfficientNetLiteImageEncoder)


def test_default_model_version_is_unchanged_by_the_kind_registry():
    assert model_version() == DEFAULT_MODEL_VERSION


def test_transformers_image_kind_uses_the_pooled_output_of_a_saved_backbone(tmp_path):
    from transformers import AutoConfig, AutoModel

    folder = tmp_path / "tiny-vit"
    architecture = dict(TINY_VIT)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.for_model(architecture.pop("model_type"), **architecture)).save_pretrained(folder)
    config = _tiny_config(kind="transformers", feature_dim=16)
    encoder = build_image_encoder(config, resolve_weights(folder))
    with torch.inference_mode():
        pooled = encoder(torch.randn(2, 3, 32, 32))
    assert pooled.shape == (2, 16)
    with pytest.raises(ModelLoadError, match="give 16-d features, the config says 32"):
        build_image_encoder(_tiny_config(kind="transformers", feature_dim=32), resolve_weights(folder))


@pytest.mark.parametrize("pooling", ["pooler", "mean", "cls"])
def test_transformers_image_kind_builds_random_backbones_from_the_architecture(pooling):
    config = _tiny_config(kind="transformers", feature_dim=16, architecture=TINY_VIT, pooling=pooling)
    encoder = build_image_encoder(config, resolve_weights("random:1"))
    with torch.inference_mode():
        assert encoder(torch.randn(3, 3, 32, 32)).shape == (3, 16)


def test_transformers_image_kind_refuses_a_checkpoint_missing_weights_it_uses(tmp_path):
    from transformers import ViTConfig, ViTModel

    architecture = {key: value for key, value in TINY_VIT.items() if key != "model_type"}
    folder = tmp_path / "vit-without-pooler"
    ViTModel(ViTConfig(**architecture), add_pooling_layer=False).save_pretrained(folder)
    with pytest.raises(ModelLoadError, match="missing"):
        build_image_encoder(_tiny_config(kind="transformers", feature_dim=16), resolve_weights(folder))
    mean = build_image_encoder(
        _tiny_config(kind="transformers", feature_dim=16, pooling="mean"), resolve_weights(folder)
    )
    assert mean.feature_dim == 16


def test_transformers_text_kind_mean_pools_a_random_model():
    config = load_config("tiny-test")
    config["text"].update(kind="transformers", architecture=TINY_TEXT_TRANSFORMER)
    encoder = build_text_encoder(config, resolve_weights("random:2"))
    with torch.inference_mode():
        assert encoder.encode(["rose gold ring", "pearl"]).shape == (2, 16)


def test_transformers_text_kind_loads_a_saved_model_with_its_tokenizer(tmp_path, tiny_model):
    folder = tmp_path / "tiny-text"
    tiny_model.text_encoder.bert.save_pretrained(folder)
    tiny_model.text_encoder.tokenizer.save_pretrained(folder)
    config = copy.deepcopy(dict(tiny_model.config))
    config["text"] = {**config["text"], "kind": "transformers"}
    encoder = build_text_encoder(config, resolve_weights(folder))
    with torch.inference_mode():
        torch.testing.assert_close(
            encoder.encode(["rose gold ring"]), tiny_model.text_encoder.encode(["rose gold ring"])
        )


def test_a_config_file_in_an_added_folder_is_a_new_model(tmp_path, config_dirs):
    config = load_config("tiny-test")
    config["image"].update(kind="transformers", architecture=TINY_VIT)
    config["preprocess"].update(resize=36, crop=32)
    (tmp_path / "tiny-vit-test.json").write_text(json.dumps({k: v for k, v in config.items() if k != "name"}))
    assert "tiny-vit-test" not in list_models()
    with pytest.raises(ModelLoadError, match="unknown model 'tiny-vit-test'"):
        load_config("tiny-vit-test")
    add_model_config_dir(tmp_path)
    add_model_config_dir(tmp_path)  # a second time changes nothing
    assert registry.config_dirs()[1:] == [tmp_path.resolve()]
    assert {"tiny-vit-test", "tiny-test", "effnet-lite2-minilm"} <= set(list_models())
    model = load_model("tiny-vit-test")
    assert model.version.startswith("tiny-vit-test@")
    assert model.image_feature_dim == 16


def test_a_model_name_defined_in_two_folders_is_refused(tmp_path, config_dirs):
    shipped = registry.CONFIG_DIR / "tiny-test.json"
    (tmp_path / "tiny-test.json").write_text(shipped.read_text())
    add_model_config_dir(tmp_path)
    with pytest.raises(ModelLoadError, match="defined more than once"):
        load_config("tiny-test")


def test_adding_a_config_folder_that_does_not_exist_raises(tmp_path, config_dirs):
    with pytest.raises(ModelLoadError, match="does not exist"):
        add_model_config_dir(tmp_path / "nowhere")
