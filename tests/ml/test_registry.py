"""Models by name, weights resolution, version strings and load errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ml.errors import ModelLoadError
from ml.model import load_fusion_checkpoint, load_model, save_fusion_checkpoint
from ml.registry import list_models, load_config, model_version, resolve_weights


def test_the_three_configs_are_registered():
    assert {"effnet-lite2-minilm", "resnet50-bert-base", "tiny-test"} <= set(list_models())
    for name in ("effnet-lite2-minilm", "resnet50-bert-base", "tiny-test"):
        assert load_config(name)["fusion"]["dim"] == 512  # one database schema for all models


def test_unknown_model_name_raises_model_load_error():
    with pytest.raises(ModelLoadError, match="no-such-model"):
        load_model("no-such-model")


def test_missing_weights_file_raises_model_load_error_naming_it(tmp_path):
    missing = tmp_path / "nope.fusion.pt"
    with pytest.raises(ModelLoadError, match=r"nope\.fusion\.pt"):
        load_model("tiny-test", fusion_weights=missing)


def test_corrupt_fusion_checkpoint_raises_model_load_error_naming_it(tmp_path):
    corrupt = tmp_path / "corrupt.fusion.pt"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a checkpoint")
    with pytest.raises(ModelLoadError, match=r"corrupt\.fusion\.pt"):
        load_model("tiny-test", fusion_weights=corrupt)


def test_hub_model_missing_from_the_local_cache_raises_instead_of_downloading():
    with pytest.raises(ModelLoadError, match="local Hugging Face cache"):
        resolve_weights("hub:shop-search/does-not-exist-anywhere")


def test_version_is_name_at_short_content_hash_and_matches_model_version(tiny_model):
    name, _, digest = tiny_model.version.partition("@")
    assert name == "tiny-test"
    assert len(digest) == 12
    assert int(digest, 16) >= 0
    assert model_version("tiny-test") == tiny_model.version


def test_version_is_the_same_in_another_process(tiny_model):
    code = "from ml.registry import model_version; print(model_version('tiny-test'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == tiny_model.version


def test_fusion_checkpoint_round_trip_keeps_vectors_and_changes_version(tiny_model, tmp_path, ring_photo):
    fusion = load_model("tiny-test", fusion_weights="random:42").fusion
    path = save_fusion_checkpoint(fusion, tmp_path / "tiny.fusion.pt", config=tiny_model.config)
    reloaded = load_model("tiny-test", fusion_weights=path)
    original = load_model("tiny-test", fusion_weights="random:42")
    assert reloaded.version != tiny_model.version
    # float16 on disk: the same vectors up to half-precision rounding of the weights
    torch.testing.assert_close(
        torch.from_numpy(reloaded.encode_image([ring_photo])),
        torch.from_numpy(original.encode_image([ring_photo])),
        atol=5e-3,
        rtol=0,
    )
    assert load_model("tiny-test", fusion_weights=path).version == reloaded.version


def test_checkpoint_of_another_shape_raises_model_load_error(tiny_model, tmp_path):
    other = load_model("tiny-test").fusion
    path = save_fusion_checkpoint(other, tmp_path / "tiny.fusion.pt", config=tiny_model.config)
    from ml.fusion import AttentionFusion

    with pytest.raises(ModelLoadError, match="does not fit"):
        load_fusion_checkpoint(AttentionFusion(16, 16, width=32, heads=2, dim=512), path)


def test_a_text_side_change_keeps_the_image_fingerprint_of_cached_views():
    import copy
    import dataclasses

    from ml.registry import model_spec

    spec = model_spec("tiny-test")
    config = copy.deepcopy(spec.config)
    config["text"]["lexical"] = {"dim": 64}
    wider = dataclasses.replace(spec, config=config)
    assert wider.image_fingerprint == spec.image_fingerprint
    assert wider.text_fingerprint != spec.text_fingerprint
    assert wider.version != spec.version
    config = copy.deepcopy(spec.config)
    config["preprocess"]["crop"] = 28
    assert dataclasses.replace(spec, config=config).image_fingerprint != spec.image_fingerprint
