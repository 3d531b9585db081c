"""The offline default model loads its packaged backbones and the committed fusion checkpoint."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ml.constants import WEIGHTS_DIR
from ml.model import DEFAULT_MODEL, ProductInput, load_model


def test_default_model_loads_packaged_weights_and_committed_fusion_checkpoint():
    assert (WEIGHTS_DIR / f"{DEFAULT_MODEL}.fusion.pt").is_file()
    model = load_model()
    assert model.name == DEFAULT_MODEL
    assert model.version.startswith(f"{DEFAULT_MODEL}@")
    assert (model.image_feature_dim, model.text_feature_dim, model.dim) == (1280, 384 + 512, 512)
    photo = Image.new("RGB", (300, 200), "white")
    photo.paste((212, 175, 55), (100, 50, 200, 150))
    query = model.encode_query(image=photo, text="yellow gold ring with diamond")
    product = model.encode_product([ProductInput([photo], "Aura Ring. Ring. Metal: yellow gold.")])
    assert query.shape == (512,)
    assert product.shape == (1, 512)
    assert np.isclose(np.linalg.norm(query), 1.0, atol=1e-5)
    assert float(query @ product[0]) > 0.3  # the same piece: clearly similar
