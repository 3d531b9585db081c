"""One word normaliser and one served scoring rule, for search, lexical features and evaluation."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ml.lexical import LexicalHasher, terms
from ml.scoring import NO_SIMILARITY, served_similarity, singular, text_match, token_set, words

# Lexical features are stored with every product: these digests were computed by the
# lexical code before the normaliser moved to ml.scoring, and must never change.
FIXED_TEXTS = [
    "Pavé Diamonds set in a ROSE gold band",
    "brass glass bangles",
    "Twirl bangle. A yellow gold bangle with a rope-textured band and coral, emerald and pearl.",
    "with the",
    "",
    "Çà et là: ÉMERAUDES, sets & stones 18k",
]
LEXICAL_DIGESTS = {
    32: "90fd94dc21f665d19dc107d2014226ce18e5fa5006bebe39c70d0d4c4cdae936",
    512: "9a6592fab8c0beb37fc0d4f7a620f9ba3edd65d6b79b603981b6a5356768967d",
}


@pytest.mark.parametrize("dim", sorted(LEXICAL_DIGESTS))
def test_lexical_features_of_fixed_texts_are_bit_identical_to_the_stored_ones(dim):
    vectors = LexicalHasher(dim)(FIXED_TEXTS)
    assert hashlib.sha256(vectors.tobytes()).hexdigest() == LEXICAL_DIGESTS[dim]


def test_glass_stays_glass_and_short_words_keep_their_s():
    assert singular("glass") == "glass"
    assert singular("brass") == "brass"
    assert singular("bus") == "bus"
    assert words("glass beads") == ["glass", "bead"]


def test_plurals_become_singular():
    assert words("Earrings Diamonds pearls rings") == ["earring", "diamond", "pearl", "ring"]


def test_accents_are_folded_and_case_is_lowered():
    assert words("Pavé ÉMERAUDE Crème") == ["pave", "emeraude", "creme"]


def test_stop_words_are_dropped_before_the_plural_is_stripped():
    # "set" and "stone" are stop words, "sets" and "stones" are not: the lexical features
    # of every stored product were computed this way.
    assert words("a set of sets with a stone and stones") == ["set", "stone"]


def test_lexical_terms_are_the_normalised_words_and_their_pairs():
    assert terms("Rose gold rings") == [*words("Rose gold rings"), "rose gold", "gold ring"]


def test_token_set_and_text_match_use_the_same_normaliser():
    query = token_set("Glass Earrings with pearls")
    assert query == frozenset({"glass", "earring", "pearl"})
    assert text_match(query, "Pearl earring in a glass box.") == 1.0
    assert text_match(query, "A pearl bangle") == pytest.approx(1 / 3)
    assert text_match(frozenset(), "anything") == 0.0
    assert token_set("") == frozenset()


def test_photo_only_query_takes_the_closer_of_photo_and_product():
    assert served_similarity(0.8, 0.6, photo_only=True) == 0.8
    assert served_similarity(0.5, 0.6, photo_only=True) == 0.6


def test_query_with_words_takes_the_product_vector_alone():
    assert served_similarity(0.9, 0.6, photo_only=False) == 0.6


def test_missing_sides_fall_back_to_the_other_one_or_no_similarity():
    assert served_similarity(None, 0.4, photo_only=True) == 0.4
    assert served_similarity(0.7, None, photo_only=True) == 0.7
    assert served_similarity(0.7, None, photo_only=False) == 0.7
    assert served_similarity(None, None, photo_only=True) == NO_SIMILARITY
    assert served_similarity(None, None, photo_only=False) == NO_SIMILARITY


@pytest.mark.parametrize("photo_only", [True, False])
def test_array_form_agrees_with_the_scalar_rule_element_by_element(photo_only):
    rng = np.random.default_rng(0)
    photo = rng.uniform(-1, 1, (4, 6)).astype(np.float32)
    product = rng.uniform(-1, 1, (4, 6)).astype(np.float32)
    scores = served_similarity(photo, product, photo_only=photo_only)
    assert scores.shape == (4, 6)
    expected = [
        [served_similarity(float(p), float(q), photo_only=photo_only) for p, q in zip(row_p, row_q, strict=True)]
        for row_p, row_q in zip(photo, product, strict=True)
    ]
    np.testing.assert_array_equal(scores, np.asarray(expected, dtype=np.float32))
    np.testing.assert_array_equal(served_similarity(None, product, photo_only=photo_only), product)
    np.testing.assert_array_equal(served_similarity(photo, None, photo_only=photo_only), photo)
