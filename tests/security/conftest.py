from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

# Small limits keep the corpus (and its over-limit files) cheap; the gate reads them from
# settings at call time, Pillow's bomb limit included.
TEST_MAX_UPLOAD_BYTES = 4_000_000
TEST_MAX_IMAGE_PIXELS = 4_000_000


@pytest.fixture
def upload_limits(settings):
    from PIL import Image

    original = settings.MAX_IMAGE_PIXELS
    settings.MAX_UPLOAD_BYTES = TEST_MAX_UPLOAD_BYTES
    settings.MAX_IMAGE_PIXELS = TEST_MAX_IMAGE_PIXELS
    yield
    Image.MAX_IMAGE_PIXELS = original  # Pillow's limit is process-wide: give the next test the real one


def media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def catalog_snapshot() -> dict:
    """Everything a refused upload must leave exactly as it was."""
    from catalog.models import Category, Product, ProductImage
    from indexing.models import ImageEmbedding, ProductEmbedding

    return {
        "categories": Category.objects.count(),
        "products": Product.objects.count(),
        "images": ProductImage.objects.count(),
        "image_embeddings": ImageEmbedding.objects.count(),
        "product_embeddings": ProductEmbedding.objects.count(),
        "media": media_files(),
    }
