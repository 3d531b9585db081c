"""Inference backends of the image backbone (ml/accel.py): same vectors as eager, the
exported graph cached by weights, eager kept when a backend cannot run."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml import accel
from ml.model import load_model


def _photos(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)) for _ in range(n)]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("backend", ["onnx", "channels-last"])
def test_backend_gives_eager_features_and_fused_vectors(backend, tmp_path):
    eager = load_model("tiny-test")
    fast = accel.use_backend(load_model("tiny-test"), backend, cache_dir=tmp_path)
    assert fast.inference_backend == backend
    photos = _photos()
    assert _cosines(fast.image_features(photos), eager.image_features(photos)).min() > 0.9999
    assert _cosines(fast.encode_image(photos), eager.encode_image(photos)).min() > 0.9999
    assert fast.version == eager.version  # same vectors, same version: no re-index needed


def test_load_model_backend_argument_uses_the_cache_and_keeps_eager_as_reference(tmp_path, monkeypatch):
    monkeypatch.setattr(accel, "ONNX_CACHE_DIR", tmp_path)
    model = load_model("tiny-test", backend="onnx")
    assert model.inference_backend == "onnx"
    assert model.eager_image_encoder is not model.image_encoder
    cached = list(tmp_path.glob("tiny-test-image-*.onnx"))
    assert len(cached) == 1  # built once, named by the weights hash
    stamp = cached[0].stat().st_mtime_ns
    load_model("tiny-test", backend="onnx")
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not exported again


def test_other_image_weights_get_another_cached_graph(tmp_path):
    accel.use_backend(load_model("tiny-test"), "onnx", cache_dir=tmp_path)
    accel.use_backend(load_model("tiny-test", image_weights="random:7"), "onnx", cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.onnx"))) == 2


def test_corrupt_cached_graph_is_exported_again(tmp_path):
    model = accel.use_backend(load_model("tiny-test"), "onnx", cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.onnx")
    path.write_bytes(b"not an onnx file")
    again = accel.use_backend(load_model("tiny-test"), "onnx", cache_dir=tmp_path)
    assert again.inference_backend == "onnx"
    photos = _photos(1)
    assert _cosines(again.image_features(photos), model.image_features(photos)).min() > 0.9999


def test_failing_export_keeps_the_model_running_eager(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(accel, "_export_onnx", broken)
    model = accel.use_backend(load_model("tiny-test"), "onnx", cache_dir=tmp_path)
    assert model.inference_backend == "eager"
    assert model.image_features(_photos(1)).shape == (1, model.image_feature_dim)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="tensorrt"):
        accel.use_backend(load_model("tiny-test"), "tensorrt")
