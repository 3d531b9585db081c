"""Attention fusion: masking, normalisation, multi-photo products."""

from __future__ import annotations

import numpy as np
import torch

from ml.fusion import AttentionFusion
from ml.model import FusionInput


def _fusion() -> AttentionFusion:
    torch.manual_seed(0)
    return AttentionFusion(12, 8, width=16, heads=4, dim=32, dropout=0.0).eval()


def test_missing_text_is_masked_out_of_attention():
    fusion = _fusion()
    images = torch.randn(2, 1, 12)
    garbage = torch.randn(2, 8) * 1e6
    garbage[1] = float("nan")
    with torch.no_grad():
        masked = fusion(images, None, garbage, torch.tensor([False, False]))
        image_only = fusion(images, None, None, None)
    torch.testing.assert_close(masked, image_only)


def test_padded_photos_are_masked_out_of_attention():
    fusion = _fusion()
    images = torch.randn(1, 3, 12)
    text = torch.randn(1, 8)
    padded = images.clone()
    padded[0, 2] = float("nan")
    with torch.no_grad():
        two_photos = fusion(images[:, :2], None, text, None)
        padded_out = fusion(padded, torch.tensor([[True, True, False]]), text, None)
    torch.testing.assert_close(padded_out, two_photos)


def test_missing_image_is_masked_out_of_attention():
    fusion = _fusion()
    text = torch.randn(2, 8)
    with torch.no_grad():
        text_only = fusion(None, None, text, None)
        masked = fusion(torch.full((2, 2, 12), 1e9), torch.zeros(2, 2, dtype=torch.bool), text, None)
    torch.testing.assert_close(masked, text_only)


def test_fused_vectors_are_unit_length():
    fusion = _fusion()
    with torch.no_grad():
        out = fusion(torch.randn(5, 3, 12), None, torch.randn(5, 8), None)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(5))


def test_photo_order_does_not_change_the_product_vector():
    fusion = _fusion()
    images = torch.randn(1, 3, 12)
    with torch.no_grad():
        forward = fusion(images, None, None, None)
        backward = fusion(images.flip(1), None, None, None)
    torch.testing.assert_close(forward, backward)


def test_mixed_batch_equals_items_fused_one_by_one(tiny_model):
    rng = np.random.default_rng(0)
    items = [
        FusionInput(image_features=rng.normal(size=(3, tiny_model.image_feature_dim))),
        FusionInput(text_features=rng.normal(size=tiny_model.text_feature_dim)),
        FusionInput(
            image_features=rng.normal(size=(1, tiny_model.image_feature_dim)),
            text_features=rng.normal(size=tiny_model.text_feature_dim),
        ),
    ]
    together = tiny_model.fuse(items)
    alone = np.concatenate([tiny_model.fuse([item]) for item in items])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def _lexical_fusion() -> AttentionFusion:
    torch.manual_seed(0)
    return AttentionFusion(12, 8, width=16, heads=4, dim=32, dropout=0.0, lexical_dim=6).eval()


def test_lexical_token_of_a_text_without_content_words_is_masked():
    fusion = _lexical_fusion()
    dense = torch.randn(2, 8)
    with_words = torch.cat([dense, torch.randn(2, 6)], dim=1)
    without_words = torch.cat([dense, torch.zeros(2, 6)], dim=1)
    with torch.no_grad():
        empty = fusion(None, None, without_words, None)
        full = fusion(None, None, with_words, None)
    assert not torch.allclose(empty, full)
    # A zero lexical part must not change the vector whatever the lexical weights are.
    with torch.no_grad():
        fusion.lexical_in[-1].weight.mul_(100.0)
        torch.testing.assert_close(fusion(None, None, without_words, None), empty)


def test_lexical_features_are_split_from_the_text_row():
    fusion = _lexical_fusion()
    text = torch.randn(3, 14)
    with torch.no_grad():
        before = fusion(None, None, text, None)
        fusion.text_in[-1].weight.zero_()  # the first 8 columns feed the BERT token only
        changed = fusion(None, None, text, None)
    assert not torch.allclose(before, changed)
    with torch.no_grad():
        text[:, :8] = 0.0
        torch.testing.assert_close(fusion(None, None, text, None), changed)
