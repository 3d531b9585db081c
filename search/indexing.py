"""Catalog rows -> embedding rows: batching, versions, failures, the sweep, upgrades.

Every write is an upsert by (photo or product, model version), so running the same work
twice (a redelivered task, the sweep after a crash) leaves exactly one row.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Iterator, Sequence

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from catalog.models import Product, ProductImage

from .engine import active_version, model_for_version, versions_to_index
from .models import ImageEmbedding, ModelVersion, ProductEmbedding

logger = logging.getLogger(__name__)


@dataclass
class IndexReport:
    images_embedded: int = 0
    products_embedded: int = 0
    failures: dict[int, str] = field(default_factory=dict)  # photo id -> reason

    def add(self, other: IndexReport) -> None:
        self.images_embedded += other.images_embedded
        self.products_embedded += other.products_embedded
        self.failures.update(other.failures)


def chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def product_text_of(product: Product) -> str:
    from ml.text import product_text

    return product_text(
        title=product.title,
        category=product.category.name,
        metal=product.get_metal_display(),
        gemstone=product.get_gemstone_display() if product.gemstone != "none" else "",
        description=product.description,
    )


def _read_photo(image: ProductImage):
    from ml.preprocess import load_image

    with image.image.open("rb") as handle:
        return load_image(handle.read())


def embed_images(model, version: ModelVersion, images: Sequence[ProductImage]) -> IndexReport:
    """Image side: backbone features + fused image-only vector per photo, in named batches."""
    from ml.model import FusionInput
    from ml.preprocess import ImageDecodeError

    report = IndexReport()
    for batch in chunked(list(images), settings.EMBED_IMAGE_BATCH_SIZE):
        decoded, photos = [], []
        for image in batch:
            try:
                decoded.append(_read_photo(image))
                photos.append(image)
            except (ImageDecodeError, FileNotFoundError, ValueError) as exc:
                # Permanent: retrying an undecodable file will not help. Batch-mates go on.
                report.failures[image.pk] = f"{type(exc).__name__}: {exc}"[:500]
        if not photos:
            continue
        features = model.image_features(decoded, batch_size=settings.EMBED_IMAGE_BATCH_SIZE)
        fused = model.fuse([FusionInput(image_features=row[None, :], text_features=None) for row in features])
        ImageEmbedding.objects.bulk_create(
            [
                ImageEmbedding(
                    image_id=photo.pk, product_id=photo.product_id, model_version=version,
                    features=feature, embedding=vector,
                )
                for photo, feature, vector in zip(photos, features, fused)
            ],
            update_conflicts=True,
            unique_fields=["image", "model_version"],
            update_fields=["features", "embedding", "product", "updated_at"],
        )
        report.images_embedded += len(photos)
    return report


def embed_products(model, version: ModelVersion, products: Sequence[Product]) -> IndexReport:
    """Text side where needed, then the fused product vector from stored features of both."""
    from ml.model import FusionInput

    report = IndexReport()
    ids = [product.pk for product in products]
    stored = {
        row.product_id: np.asarray(row.text_features, dtype=np.float32)
        for row in ProductEmbedding.objects.filter(product_id__in=ids, model_version=version).only(
            "product_id", "text_features"
        )
    }
    stale = [product for product in products if product.embedding_dirty or product.pk not in stored]
    for batch in chunked(stale, settings.EMBED_TEXT_BATCH_SIZE):
        texts = model.text_features([product_text_of(p) for p in batch], batch_size=settings.EMBED_TEXT_BATCH_SIZE)
        stored.update({product.pk: row for product, row in zip(batch, texts)})

    photo_features: dict[int, list[np.ndarray]] = defaultdict(list)
    for row in (
        ImageEmbedding.objects.filter(product_id__in=ids, model_version=version)
        .order_by("image__position", "image_id")
        .values_list("product_id", "features")
    ):
        photo_features[row[0]].append(np.asarray(row[1], dtype=np.float32))

    inputs = [
        FusionInput(
            image_features=np.stack(photo_features[pk]) if photo_features.get(pk) else None,
            text_features=stored[pk],
        )
        for pk in ids
    ]
    fused = model.fuse(inputs) if inputs else []
    ProductEmbedding.objects.bulk_create(
        [
            ProductEmbedding(product_id=pk, model_version=version, text_features=stored[pk], embedding=vector)
            for pk, vector in zip(ids, fused)
        ],
        update_conflicts=True,
        unique_fields=["product", "model_version"],
        update_fields=["text_features", "embedding", "updated_at"],
    )
    report.products_embedded += len(ids)
    return report


def index_catalog(
    product_ids: Iterable[int] = (), image_ids: Iterable[int] = (), versions: list[ModelVersion] | None = None
) -> IndexReport:
    """Embed the given photos and products for every version that is being served or built."""
    images = list(ProductImage.objects.filter(pk__in=set(image_ids)).order_by("pk"))
    affected = set(product_ids) | {image.product_id for image in images}
    products = list(Product.objects.filter(pk__in=affected).select_related("category").order_by("pk"))
    versions = versions if versions is not None else versions_to_index()
    report = IndexReport()
    for version in versions:
        model = model_for_version(version)
        # A product whose photos were never embedded for this version gets them now.
        missing = ProductImage.objects.filter(product_id__in=affected).exclude(
            Exists(ImageEmbedding.objects.filter(image=OuterRef("pk"), model_version=version))
        )
        todo = {image.pk: image for image in images}
        todo.update({image.pk: image for image in missing})
        version_report = embed_images(model, version, sorted(todo.values(), key=lambda i: i.pk))
        version_report.add(embed_products(model, version, products))
        if version.state == ModelVersion.State.ACTIVE:
            report.add(version_report)
        else:
            report.failures.update(version_report.failures)
    _clear_flags(products, images, report.failures)
    logger.info(
        "indexed %d photos, %d products for %s (%d failed)",
        report.images_embedded, report.products_embedded,
        ", ".join(v.version for v in versions), len(report.failures),
    )
    return report


def _clear_flags(products: list[Product], images: list[ProductImage], failures: dict[int, str]) -> None:
    """Clear a flag only if nobody re-marked the row while we worked (compare marked_at)."""
    with transaction.atomic():
        for image in images:
            ProductImage.objects.filter(pk=image.pk, embedding_marked_at=image.embedding_marked_at).update(
                embedding_dirty=False, embedding_error=failures.get(image.pk, "")
            )
        for product in products:
            Product.objects.filter(pk=product.pk, embedding_marked_at=product.embedding_marked_at).update(
                embedding_dirty=False, embedding_error=""
            )


def dirty_ids(older_than: timedelta | None = None) -> tuple[list[int], list[int]]:
    products = Product.objects.filter(embedding_dirty=True)
    images = ProductImage.objects.filter(embedding_dirty=True)
    if older_than is not None:
        cutoff = timezone.now() - older_than
        products = products.filter(embedding_marked_at__lt=cutoff)
        images = images.filter(embedding_marked_at__lt=cutoff)
    return list(products.values_list("pk", flat=True)), list(images.values_list("pk", flat=True))


def missing_ids(version: ModelVersion) -> tuple[list[int], list[int]]:
    """Rows that have no embedding for `version` yet (a new install, or an upgrade backfill)."""
    products = Product.objects.exclude(
        Exists(ProductEmbedding.objects.filter(product=OuterRef("pk"), model_version=version))
    )
    images = ProductImage.objects.filter(embedding_error="").exclude(
        Exists(ImageEmbedding.objects.filter(image=OuterRef("pk"), model_version=version))
    )
    return list(products.values_list("pk", flat=True)), list(images.values_list("pk", flat=True))


def index_status() -> dict:
    version = active_version(create=False)
    products = Product.objects.count()
    images = ProductImage.objects.count()
    embedded = ImageEmbedding.objects.filter(model_version=version).count() if version else 0
    pending = (
        Product.objects.filter(embedding_dirty=True).count()
        + ProductImage.objects.filter(embedding_dirty=True).count()
    )
    failed = (
        Product.objects.exclude(embedding_error="").count()
        + ProductImage.objects.exclude(embedding_error="").count()
    )
    return {
        "products": products,
        "images": images,
        "embedded_images": embedded,
        "pending": pending,
        "failed": failed,
        "model_version": version.version if version else None,
        "backfilling": list(
            ModelVersion.objects.filter(state=ModelVersion.State.BACKFILLING).values_list("version", flat=True)
        ),
    }


@transaction.atomic
def activate_version(version: ModelVersion) -> None:
    """The atomic switch: one transaction retires the old version and activates the new one."""
    ModelVersion.objects.select_for_update().filter(state=ModelVersion.State.ACTIVE).exclude(pk=version.pk).update(
        state=ModelVersion.State.RETIRED
    )
    version.state = ModelVersion.State.ACTIVE
    version.activated_at = timezone.now()
    version.save(update_fields=["state", "activated_at"])
    logger.info("model version %s is now serving search", version.version)


def backfill_complete(version: ModelVersion) -> bool:
    products, images = missing_ids(version)
    return not products and not images and not Product.objects.filter(embedding_dirty=True).exists()


def active_model():
    return model_for_version(active_version())
