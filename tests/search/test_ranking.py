from search.ranking import CandidateFeatures, QuerySignals, predict_category, rank, text_match, tokens

WEIGHTS = {"similarity": 1.0, "category": 0.04, "metal": 0.03, "gemstone": 0.03, "text_match": 0.06}


def candidate(pid, image=None, product=None, category="Ring", metal="yellow_gold", gemstone="diamond", text=""):
    return CandidateFeatures(pid, image, product, {"category": category, "metal": metal, "gemstone": gemstone}, text)


def test_similarity_is_the_best_of_photo_and_product_match():
    [result] = rank([candidate(1, image=0.7, product=0.9)], QuerySignals(), WEIGHTS, 1)
    assert result.breakdown["similarity"] == 0.9


def test_a_query_with_words_is_scored_by_the_product_vector_not_a_photo():
    photo_closer = candidate(1, image=0.9, product=0.6)
    words_closer = candidate(2, image=0.7, product=0.8)
    with_text = rank([photo_closer, words_closer], QuerySignals(photo_only=False), WEIGHTS, 2)
    assert [(r.product_id, r.breakdown["similarity"]) for r in with_text] == [(2, 0.8), (1, 0.6)]
    photo_only = rank([photo_closer, words_closer], QuerySignals(photo_only=True), WEIGHTS, 2)
    assert [r.product_id for r in photo_only] == [1, 2]
    # A product not embedded yet (no product vector) still ranks by its photo.
    [lone] = rank([candidate(3, image=0.5)], QuerySignals(photo_only=False), WEIGHTS, 1)
    assert lone.breakdown["similarity"] == 0.5


def test_boosts_reorder_near_ties_but_not_clear_winners():
    signals = QuerySignals(
        attributes={"metal": {"rose_gold": 1.0}, "gemstone": {"sapphire": 1.0}}, tokens=tokens("rose gold sapphire")
    )
    near_tie = rank(
        [
            candidate(1, image=0.80),
            candidate(2, image=0.79, metal="rose_gold", gemstone="sapphire", text="rose gold sapphire ring"),
        ],
        signals,
        WEIGHTS,
        2,
    )
    assert [r.product_id for r in near_tie] == [2, 1]
    clear = rank(
        [candidate(1, image=0.95), candidate(2, image=0.70, metal="rose_gold", gemstone="sapphire")],
        signals,
        WEIGHTS,
        2,
    )
    assert [r.product_id for r in clear] == [1, 2]


def test_equal_scores_order_deterministically_by_product_id():
    assert [
        r.product_id
        for r in rank([candidate(3, 0.5), candidate(1, 0.5), candidate(2, 0.5)], QuerySignals(), WEIGHTS, 3)
    ] == [1, 2, 3]


def test_text_match_ignores_stopwords_and_plurals():
    assert text_match(tokens("a ring with diamonds"), "Solitaire diamond ring") == 1.0
    assert text_match(tokens("pearl"), "Gold hoops") == 0.0
    assert text_match(frozenset(), "anything") == 0.0


def test_category_prediction_is_a_similarity_weighted_vote():
    distribution = predict_category(["Ring", "Ring", "Earring"], [0.9, 0.88, 0.6])
    assert next(iter(distribution)) == "Ring"
    assert distribution["Ring"] > 0.95
    assert abs(sum(distribution.values()) - 1) < 1e-9
    assert predict_category([], []) == {}
