"""The SearchModel contract the Django side codes against, on the tiny test model."""

from __future__ import annotations

import numpy as np
import pytest

from ml.model import FusionInput, ProductInput, load_model


def _unit_rows(vectors: np.ndarray) -> bool:
    return np.allclose(np.linalg.norm(vectors, axis=-1), 1.0, atol=1e-5)


def test_raw_feature_shapes_match_the_config(tiny_model, ring_photo):
    images = tiny_model.image_features([ring_photo, ring_photo, ring_photo], batch_size=2)
    texts = tiny_model.text_features(["rose gold ring", "pearl necklace"], batch_size=1)
    assert images.shape == (3, tiny_model.image_feature_dim)
    assert images.dtype == np.float32
    assert texts.shape == (2, tiny_model.text_feature_dim)
    assert texts.dtype == np.float32


def test_encoders_return_l2_normalised_float32_vectors_of_model_dim(tiny_model, ring_photo):
    for vectors in (
        tiny_model.encode_image([ring_photo, ring_photo]),
        tiny_model.encode_text(["gold bangle", "silver ring", "diamond"]),
        tiny_model.encode_product(
            [ProductInput([ring_photo, ring_photo], "gold ring"), ProductInput([ring_photo], "x")]
        ),
    ):
        assert vectors.dtype == np.float32
        assert vectors.shape[1] == tiny_model.dim == 512
        assert _unit_rows(vectors)
    query = tiny_model.encode_query(image=ring_photo, text="gold ring")
    assert query.shape == (tiny_model.dim,)
    assert _unit_rows(query)


def test_empty_batches_return_empty_arrays(tiny_model):
    assert tiny_model.encode_image([]).shape == (0, tiny_model.dim)
    assert tiny_model.text_features([]).shape == (0, tiny_model.text_feature_dim)
    assert tiny_model.fuse([]).shape == (0, tiny_model.dim)


def test_encode_image_equals_fuse_of_stored_image_features(tiny_model, ring_photo):
    features = tiny_model.image_features([ring_photo])
    fused = tiny_model.fuse([FusionInput(image_features=features)])
    np.testing.assert_allclose(tiny_model.encode_image([ring_photo]), fused, atol=1e-6)


def test_encode_product_equals_fuse_of_stored_features(tiny_model, ring_photo):
    product = ProductInput([ring_photo, ring_photo.rotate(90)], "rose gold ring with diamond")
    stored = FusionInput(
        image_features=tiny_model.image_features(product.images),
        text_features=tiny_model.text_features([product.text])[0],
    )
    np.testing.assert_allclose(tiny_model.encode_product([product]), tiny_model.fuse([stored]), atol=1e-6)


def test_query_text_only_and_image_only_match_encode_text_and_encode_image(tiny_model, ring_photo):
    np.testing.assert_allclose(tiny_model.encode_query(text="pearl"), tiny_model.encode_text(["pearl"])[0], atol=1e-6)
    np.testing.assert_allclose(
        tiny_model.encode_query(image=ring_photo), tiny_model.encode_image([ring_photo])[0], atol=1e-6
    )


def test_query_without_image_or_text_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="needs an image or a text"):
        tiny_model.encode_query(text="   ")
    with pytest.raises(ValueError, match="neither image nor text"):
        tiny_model.fuse([FusionInput()])


def test_fuse_rejects_features_of_the_wrong_width(tiny_model):
    with pytest.raises(ValueError, match="image_features"):
        tiny_model.fuse([FusionInput(image_features=np.zeros((1, 3), np.float32))])


def test_batch_size_does_not_change_vectors(tiny_model, ring_photo):
    images = [ring_photo, ring_photo.rotate(90, expand=True), ring_photo.convert("L").convert("RGB")]
    np.testing.assert_allclose(
        tiny_model.encode_image(images, batch_size=1), tiny_model.encode_image(images, batch_size=3), atol=1e-5
    )


def test_two_loads_give_the_same_version_and_the_same_vectors(tiny_model, ring_photo):
    again = load_model("tiny-test")
    assert again.version == tiny_model.version
    assert again.version.startswith("tiny-test@")
    np.testing.assert_array_equal(again.encode_image([ring_photo]), tiny_model.encode_image([ring_photo]))
    np.testing.assert_array_equal(again.encode_text(["gold"]), tiny_model.encode_text(["gold"]))


def test_other_fusion_weights_give_another_version(tiny_model):
    other = load_model("tiny-test", fusion_weights="random:99")
    assert other.version != tiny_model.version


def test_product_without_photos_is_embedded_from_its_text(tiny_model):
    vectors = tiny_model.encode_product([ProductInput([], "gold bangle")])
    np.testing.assert_allclose(vectors, tiny_model.encode_text(["gold bangle"]), atol=1e-6)
