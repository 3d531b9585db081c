"""Training pieces: losses, metrics, split, queries, augmentations, and a tiny run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ml.data.giva import GivaProduct
from ml.training.augment import VIEW_SIZE, shopper_view
from ml.training.data import AttributeQuery, attribute_queries_for, description_query, split_products
from ml.training.loop import TrainingData, TrainSettings, train_fusion
from ml.training.losses import hardest_negative_triplet, multi_positive_info_nce
from ml.training.metrics import average_precision_at_k, ndcg_at_k, precision_at_k, recall_at_k


def _product(sku: str, category: str, **fields) -> GivaProduct:
    base = dict(
        sku=sku,
        title=f"{category} {sku}",
        description="A yellow gold piece.",
        category=category,
        subcategory="",
        material="",
        metal_type="gold",
        metal_color="yellow",
        stone_type="diamond",
        stone_color="",
        stone_shape="",
        visual_description="A delicate yellow gold ring with a round diamond.",
        price_inr=1,
        image_name="",
    )
    base.update(fields)
    return GivaProduct(**base)


def test_split_is_stratified_by_category_seeded_and_disjoint():
    products = [_product(f"{c}{i:02d}", c) for c in ("Ring", "Bangle") for i in range(10)]
    train, val = split_products(products, 0.2, seed=3)
    assert set(train).isdisjoint(val)
    assert len(train) + len(val) == 20
    assert sorted(sku[:4] for sku in val).count("Ring") == 2
    assert split_products(products, 0.2, seed=3) == (train, val)
    assert split_products(products, 0.2, seed=4) != (train, val)


def test_attribute_queries_match_only_products_with_every_asked_attribute():
    query = AttributeQuery("rose gold ring with diamond", "ring", "rose gold", "diamond")
    assert query.matches(("ring", "rose gold", "diamond"))
    assert not query.matches(("ring", "yellow gold", "diamond"))
    assert not query.matches(("bangle", "rose gold", "diamond"))
    texts = [q.text for q in attribute_queries_for(("ring", "white gold", "diamond"))]
    assert "white gold ring with diamond" in texts


def test_description_query_is_short_reproducible_and_names_the_category():
    product = _product("R1", "Ring")
    first = description_query(product, np.random.default_rng(5))
    assert first == description_query(product, np.random.default_rng(5))
    assert 5 <= len(first.split()) <= 11
    assert "ring" in first


def test_shopper_view_is_reproducible_for_a_seed_and_differs_across_seeds():
    photo = Image.new("RGB", (120, 90), "white")
    photo.paste((212, 175, 55), (40, 30, 80, 60))
    one = np.asarray(shopper_view(photo, np.random.default_rng(1)))
    again = np.asarray(shopper_view(photo, np.random.default_rng(1)))
    other = np.asarray(shopper_view(photo, np.random.default_rng(2)))
    assert one.shape == (VIEW_SIZE, VIEW_SIZE, 3)
    np.testing.assert_array_equal(one, again)
    assert not np.array_equal(one, other)


def test_info_nce_is_low_for_matching_pairs_and_high_for_shuffled_ones():
    torch.manual_seed(0)
    products = torch.nn.functional.normalize(torch.randn(8, 16), dim=-1)
    identity = torch.eye(8, dtype=torch.bool)
    scale = torch.tensor(20.0)
    matched = multi_positive_info_nce(products, products, identity, scale)
    shuffled = multi_positive_info_nce(products.roll(1, 0), products, identity, scale)
    assert matched < 0.1 < shuffled
    assert hardest_negative_triplet(products, products, identity, 0.2) < hardest_negative_triplet(
        products.roll(1, 0), products, identity, 0.2
    )


def test_multi_positive_info_nce_does_not_punish_other_matching_products():
    products = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=-1)
    query = torch.nn.functional.normalize(torch.tensor([[1.0, 0.05]]), dim=-1)
    scale = torch.tensor(50.0)
    both = torch.tensor([[True, True, False]])
    only_first = torch.tensor([[True, False, False]])
    assert multi_positive_info_nce(query, products, both, scale) < multi_positive_info_nce(
        query, products, only_first, scale
    )


def test_retrieval_metrics_on_a_hand_made_ranking():
    scores = np.array([[0.9, 0.8, 0.1], [0.2, 0.9, 0.5]])
    relevant = np.array([[False, True, False], [False, True, True]])
    assert recall_at_k(scores, relevant, 1) == 0.5
    assert recall_at_k(scores, relevant, 2) == 1.0
    assert average_precision_at_k(scores, relevant, 10) == pytest.approx((0.5 + 1.0) / 2)
    assert ndcg_at_k(scores, relevant, 10) == pytest.approx(((1 / np.log2(3)) + 1.0) / 2)
    assert precision_at_k(scores, relevant, 2, capped=False) == pytest.approx((0.5 + 1.0) / 2)


def _synthetic_data(model, products: int = 12, views: int = 4) -> TrainingData:
    generator = torch.Generator().manual_seed(0)
    photo = torch.randn(products, model.image_feature_dim, generator=generator)
    text = torch.randn(products, model.text_feature_dim, generator=generator)
    match = torch.zeros(2, products, dtype=torch.bool)
    match[0, : products // 2] = True
    match[1, products // 2 :] = True
    return TrainingData(
        photo=photo,
        product_text=text,
        views=photo[:, None] + 0.3 * torch.randn(products, views, model.image_feature_dim, generator=generator),
        spans=text[:, None] + 0.3 * torch.randn(products, 3, model.text_feature_dim, generator=generator),
        titles=text + 0.3 * torch.randn(products, model.text_feature_dim, generator=generator),
        attribute_text=torch.randn(2, model.text_feature_dim, generator=generator),
        attribute_match=match,
        attribute_of_product=[[0] if p < products // 2 else [1] for p in range(products)],
    )


def test_training_lowers_the_loss_on_a_tiny_synthetic_set():
    from ml.model import load_model

    model = load_model("tiny-test", fusion_weights="random:7")
    settings = TrainSettings(config="tiny-test", epochs=25, batch_size=12, lr=3e-3, warmup_steps=5, seed=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread avoids scheduling overhead
    try:
        report = train_fusion(model.fusion, _synthetic_data(model), settings, progress=False)
    finally:
        torch.set_num_threads(threads)
    losses = [row["loss"] for row in report["history"]]
    assert losses[-1] < 0.7 * losses[0]
    assert not model.fusion.training  # back in eval mode for inference


def test_training_keeps_the_layers_the_config_freezes_and_moves_the_rest():
    from ml.fusion import AttentionFusion

    torch.manual_seed(0)
    fusion = AttentionFusion(12, 8, width=16, heads=4, dim=32, lexical_dim=6, frozen=("text_in", "lexical_in", "w_v"))
    assert not any(p.requires_grad for p in fusion.text_in.parameters())
    before = {name: value.clone() for name, value in fusion.state_dict().items()}
    model = type("Shapes", (), {"image_feature_dim": 12, "text_feature_dim": 14})()
    settings = TrainSettings(epochs=5, batch_size=12, lr=3e-3, warmup_steps=1, seed=1)
    train_fusion(fusion, _synthetic_data(model), settings, progress=False)
    after = fusion.state_dict()
    for name in before:
        unchanged = torch.equal(before[name], after[name])
        if name.startswith(("text_in.", "lexical_in.", "w_v.")):
            assert unchanged, name
        elif name.endswith("weight") and name.startswith(("image_in.2", "w_q", "w_k")):
            assert not unchanged, name
    with pytest.raises(ValueError, match="no such layer"):
        AttentionFusion(12, 8, width=16, heads=4, dim=32, frozen=("lexical_in",))
