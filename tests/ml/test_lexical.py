"""Lexical features: hashed content words and word pairs, fixed and corpus-free."""

from __future__ import annotations

import numpy as np

from ml.lexical import LexicalHasher, terms


def test_terms_fold_case_accents_plurals_and_drop_stop_words():
    assert terms("Pavé Diamonds set in a ROSE gold band") == [
        "pave",
        "diamond",
        "rose",
        "gold",
        "band",
        "pave diamond",
        "diamond rose",
        "rose gold",
        "gold band",
    ]
    assert terms("with the and of") == []
    assert terms("brass glass") == ["brass", "glass", "brass glass"]  # -ss is not a plural


def test_vectors_are_unit_length_deterministic_and_zero_without_content_words():
    hasher = LexicalHasher(64)
    vectors = hasher(["rose gold ring", "rose gold ring", "with the", ""])
    np.testing.assert_allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert not vectors[2:].any()
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, 64)


def test_shared_words_score_higher_than_other_words():
    hasher = LexicalHasher(512)
    documents = hasher(
        [
            "Twirl bangle. A yellow gold bangle with a rope-textured band and coral, emerald and pearl.",
            "Sheen bangle. A sleek yellow gold bangle with a row of tiny round diamonds in pave.",
            "Aura ring. A rose gold ring with an oval pink sapphire in a bezel.",
        ]
    )
    queries = hasher(["rope textured band with coral", "tiny round diamonds", "oval sapphire ring"])
    np.testing.assert_array_equal((queries @ documents.T).argmax(axis=1), [0, 1, 2])


def test_search_model_text_features_end_with_the_lexical_features(tiny_model):
    features = tiny_model.text_features(["rose gold ring", "with the"])
    lexical = tiny_model.lexical(["rose gold ring", "with the"])
    assert features.shape == (2, tiny_model.text_feature_dim)
    np.testing.assert_array_equal(features[:, -tiny_model.lexical.dim :], lexical)
