from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings

from catalog.models import Category, Product
from indexing.models import ProductEmbedding


@pytest.fixture
def synthetic_catalog(version):
    """Products with clustered random vectors (no photos), loaded in bulk: enough rows to
    make the HNSW graph matter. Returns (products, vectors)."""

    def build(count: int, seed: int = 0) -> tuple[list[Product], np.ndarray]:
        rng = np.random.default_rng(seed)
        categories = [
            Category.objects.get_or_create(slug=s, defaults={"name": s.title()})[0]
            for s in ("ring", "earring", "necklace", "pendant")
        ]
        centres = rng.normal(size=(len(categories), settings.SEARCH_EMBEDDING_DIM))
        products, vectors = [], []
        for i in range(count):
            c = i % len(categories)
            vector = centres[c] + rng.normal(scale=1.5, size=settings.SEARCH_EMBEDDING_DIM)
            vectors.append(vector / np.linalg.norm(vector))
            products.append(
                Product(
                    sku=f"SYN-{i:06d}",
                    title=f"Synthetic {i}",
                    category=categories[c],
                    metal=["yellow_gold", "rose_gold", "white_gold", "silver"][(i // 4) % 4],
                    gemstone="diamond" if i % 7 else "ruby",
                    price=100 + (i % 1000),
                    stock=i % 3,
                    embedding_dirty=False,
                )
            )
        products = Product.objects.bulk_create(products, batch_size=2000)
        vectors = np.asarray(vectors, dtype=np.float32)
        ProductEmbedding.objects.bulk_create(
            [
                ProductEmbedding(product=p, model_version=version, text_features=v[:8], embedding=v)
                for p, v in zip(products, vectors, strict=False)
            ],
            batch_size=1000,
        )
        return products, vectors

    return build
