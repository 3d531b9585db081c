"""Out-of-domain evaluation: the catalogue folder, the unseen view recipe, the metrics."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml.data.folder import CatalogProduct, gemstone_words, load_folder_catalog, metal_words
from ml.training.augment import VIEW_SIZE, shopper_view, unseen_shopper_view
from ml.training.out_of_domain import (
    RAW,
    SERVED,
    attribute_phrasings,
    evaluate_out_of_domain,
    expected_calibration_error,
    predict_categories,
)

_COLOURS = {"ring": (212, 175, 55), "earring": (190, 190, 200), "pendant": (180, 60, 60)}


def _photo(colour: tuple[int, int, int], seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    array = np.full((64, 64, 3), 255, dtype=np.uint8)
    top, left = rng.integers(4, 24, 2)
    array[top : top + 30, left : left + 30] = colour
    return Image.fromarray(array, "RGB")


def _write_folder(root, products_per_category: int = 2):
    (root / "images" / "catalog").mkdir(parents=True)
    (root / "images" / "views").mkdir(parents=True)
    rows, views = [], []
    for c, (category, colour) in enumerate(_COLOURS.items()):
        for i in range(products_per_category):
            sku = f"t-{category}{i}"
            _photo(colour, 10 * c + i).save(root / "images" / "catalog" / f"{sku}.jpg")
            _photo(colour, 100 + 10 * c + i).save(root / "images" / "views" / f"{sku}_1.jpg")
            rows.append(f"{sku},Piece {sku},A piece.,{category},14k gold,white,blue sapphire,,images/catalog/{sku}.jpg")
            views.append(f"images/views/{sku}_1.jpg,,{sku}")
    header = "sku,title,description,category,metal,metal_color,gemstone,price,images"
    (root / "catalog.csv").write_text("\n".join([header, *rows]) + "\n")
    (root / "views.csv").write_text("\n".join(["query_image,query_text,relevant_skus", *views]) + "\n")


def test_folder_catalogue_reads_products_and_views_in_the_demo_catalogues_words(tmp_path):
    _write_folder(tmp_path)
    catalog = load_folder_catalog(tmp_path)
    assert len(catalog.products) == 6
    assert len(catalog.views) == 6
    ring = catalog.products[0]
    assert (ring.category, ring.metal, ring.gemstone) == ("ring", "white gold", "sapphire")
    assert "Metal: white gold" in ring.text
    assert ring.photo().size == (64, 64)
    assert metal_words("sterling silver", "silver") == "silver"
    assert metal_words("18k gold", "yellow and white") == "two-tone gold"
    assert gemstone_words("pearl, cubic zirconia") == "pearl"


def test_unseen_recipe_is_reproducible_square_and_not_the_training_recipe(ring_photo):
    one = np.asarray(unseen_shopper_view(ring_photo, np.random.default_rng(3)))
    again = np.asarray(unseen_shopper_view(ring_photo, np.random.default_rng(3)))
    training = np.asarray(shopper_view(ring_photo, np.random.default_rng(3)))
    assert one.shape == (VIEW_SIZE, VIEW_SIZE, 3)
    assert np.array_equal(one, again)
    assert not np.array_equal(one, training)


def test_attribute_phrasings_say_only_what_the_catalogue_states():
    plain = CatalogProduct("s", "t", "earring", "", "", "t")
    assert attribute_phrasings(plain) == ["earrings"]
    stone = CatalogProduct("s", "t", "ring", "silver", "garnet", "t")
    assert attribute_phrasings(stone) == ["silver ring", "ring with garnet", "silver ring with garnet"]


def test_category_vote_follows_the_closest_photos_and_calibration_error_of_a_perfect_guess_is_zero():
    scores = np.array([[0.9, 0.1, 0.85], [0.1, 0.9, 0.2]])
    probabilities, names = predict_categories(scores, np.array(["ring", "bangle", "ring"]))
    assert names == ["bangle", "ring"]
    assert probabilities[0].argmax() == 1
    assert probabilities[1].argmax() == 0
    assert np.allclose(probabilities.sum(axis=1), 1)
    assert expected_calibration_error(np.array([1.0, 1.0]), np.array([True, True])) == 0.0


def test_out_of_domain_evaluation_reports_every_query_kind_against_the_raw_baseline(tmp_path, tiny_model):
    _write_folder(tmp_path)
    distractors = [CatalogProduct("d-0", "Other", "ring", "silver", "", "Other. ring", tmp_path / "d.jpg")]
    _photo((40, 40, 40), 999).save(tmp_path / "d.jpg")
    results = evaluate_out_of_domain(tiny_model, tmp_path, views=2, distractors=distractors, cache=False)
    assert results["gallery"] == {"size": 7, "catalogue": 6, "demo_distractors": 1}
    assert results["queries"]["shopper_views"] == 12
    assert results["queries"]["other_views"] == 6
    for kind in ("shopper_views", "other_views"):
        assert set(results[kind]) >= {RAW, SERVED}
        assert 0.0 <= results[kind][SERVED]["R@1"] <= results[kind][SERVED]["R@10"] <= 1.0
    assert 0.0 <= results["attribute_texts"][SERVED]["mAP@10"] <= 1.0
    assert 0.0 <= results["categories"][SERVED]["accuracy"] <= 1.0
    assert "served shopper-view R@1 >= raw + 15 points" in results["targets"]


def test_out_of_domain_evaluation_needs_a_catalogue_csv(tmp_path, tiny_model):
    with pytest.raises(FileNotFoundError):
        evaluate_out_of_domain(tiny_model, tmp_path, distractors=[], cache=False)
