"""Catalog rows -> embedding rows: batching, versions, failures, the sweep, upgrades.

A task first works out what still needs doing (a photo that is marked, or has no row for
a version; a product that is marked, has no row, or has a photo that was just embedded),
so a redelivered task or a sweep re-enqueue of finished work costs one query. Every
write is an upsert by (photo or product, model version), made only if the catalog row
did not change while its vector was computed (`embedding_marked_at` is compared under a
row lock), so two tasks on the same rows never leave an older vector last, and work
done twice leaves exactly one row.

Flags are cleared in the same transaction that writes the fused product vector: a
worker killed anywhere before that leaves the rows marked, and the sweep redoes them.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from catalog import searchable
from catalog.models import Product, ProductImage
from catalog.services import missing_photo_files

from .engine import active_version, model_for_version, versions_to_index
from .models import ImageEmbedding, ModelVersion, ProductEmbedding

if TYPE_CHECKING:
    from ml.model import SearchModel

logger = logging.getLogger(__name__)
# Errors that say nothing about the photo being embedded: raised for the task to handle.
NOT_A_PHOTO_FAULT = (SoftTimeLimitExceeded, MemoryError)


@dataclass
class IndexReport:
    images_embedded: int = 0  # photos written, for every version that needed them
    products_embedded: int = 0  # fused product vectors written (a product counts once)
    skipped: int = 0  # asked for, but already up to date, deleted, or changed meanwhile
    failures: dict[int, str] = field(default_factory=dict)  # photo id -> reason

    def add(self, other: IndexReport) -> None:
        self.images_embedded += other.images_embedded
        self.products_embedded += other.products_embedded
        self.skipped += other.skipped
        self.failures.update(other.failures)


@dataclass
class _Plan:
    """What one call must do, per version (ids by version id)."""

    versions: list[ModelVersion]
    products: dict[int, Product]
    images: list[ProductImage]
    images_for: dict[int, set[int]]
    products_for: dict[int, set[int]]
    text_for: dict[int, set[int]]
    skipped: int = 0


def chunked(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def product_text_of(product: Product) -> str:
    """The text the model embeds: the title, the declared text attributes worded as in
    training ("Metal: rose gold", "Gemstone: diamond"), the description."""
    from ml.text import product_text

    words: dict[str, str] = {}
    for attribute in searchable.in_text():
        if attribute.kind is searchable.FilterKind.CATEGORY:
            words[attribute.name] = product.category.name
            continue
        value = getattr(product, attribute.name)
        words[attribute.name] = "" if value in attribute.text_omit else attribute.choice_label(value).lower()
    return product_text(title=product.title, description=product.description, **words)


def _read_photo(image: ProductImage, side: int | None = None):
    """Decoded as a query photo is (search.query.encode_query): a JPEG at the smallest DCT
    scale that still covers the model's input side, so a shopper's copy of a catalog photo
    gets the very vector of the catalog photo."""
    from ml.preprocess import load_image

    with image.image.open("rb") as handle:
        return load_image(handle.read(), draft=(side, side) if side else None)


def _affected(product_ids: set[int], image_ids: set[int]) -> tuple[dict[int, Product], list[ProductImage]]:
    """The products asked for or owning a photo asked for, and EVERY photo of them: one never
    embedded for a version is done now, so the product's fused vector is complete."""
    owners = set(ProductImage.objects.filter(pk__in=image_ids).values_list("product_id", flat=True))
    products = {
        product.pk: product
        for product in Product.objects.filter(pk__in=product_ids | owners).select_related("category")
    }
    images = list(ProductImage.objects.filter(product_id__in=list(products)).order_by("pk"))
    return products, images


def _existing_rows(
    products: dict[int, Product], images: list[ProductImage], versions: list[ModelVersion]
) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    """(photo, version) and (product, version) pairs that already have an embedding row."""
    version_ids = [version.pk for version in versions]
    have_image = set(
        ImageEmbedding.objects.filter(
            image_id__in=[i.pk for i in images], model_version_id__in=version_ids
        ).values_list("image_id", "model_version_id")
    )
    have_product = set(
        ProductEmbedding.objects.filter(product_id__in=list(products), model_version_id__in=version_ids).values_list(
            "product_id", "model_version_id"
        )
    )
    return have_image, have_product


def _plan(product_ids: Iterable[int], image_ids: Iterable[int], versions: list[ModelVersion]) -> _Plan:
    """Per version: the photos marked or without a row, the products to fuse again (marked,
    without a row, or with a photo done now) and those whose text must be encoded."""
    product_ids, image_ids = set(product_ids), set(image_ids)
    products, images = _affected(product_ids, image_ids)
    have_image, have_product = _existing_rows(products, images, versions)
    plan = _Plan(versions, products, [], {}, {}, {})
    for version in versions:
        wanted = {
            image.pk
            for image in images
            if image.embedding_dirty or ((image.pk, version.pk) not in have_image and not image.embedding_error)
        }
        plan.images_for[version.pk] = wanted
        touched = {image.product_id for image in images if image.pk in wanted}
        plan.products_for[version.pk] = {
            pk
            for pk, product in products.items()
            if product.embedding_dirty or (pk, version.pk) not in have_product or pk in touched
        }
        plan.text_for[version.pk] = {
            pk
            for pk in plan.products_for[version.pk]
            if products[pk].embedding_dirty or (pk, version.pk) not in have_product
        }
    needed_images = set().union(*plan.images_for.values()) if versions else set()
    needed_products = set().union(*plan.products_for.values()) if versions else set()
    plan.images = [image for image in images if image.pk in needed_images]
    plan.products = {pk: product for pk, product in products.items() if pk in needed_products}
    plan.skipped = len(image_ids - needed_images) + len(product_ids - needed_products)
    return plan


def embed_images(model, photos: Sequence) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """Raw features + fused image-only vector per decoded photo, in one batch.

    A photo the model cannot take fails alone (its index in the third value) and its
    batch-mates go on; when every photo fails on its own too, the fault is not in the
    photos and the error is raised for the task to retry.
    """
    from ml.model import FusionInput

    def run(items: Sequence) -> tuple[np.ndarray, np.ndarray]:
        features = model.image_features(items, batch_size=settings.EMBED_IMAGE_BATCH_SIZE)
        fused = model.fuse([FusionInput(image_features=row[None, :]) for row in features])
        return features, fused

    try:
        features, fused = run(photos)
        return features, fused, {}
    except NOT_A_PHOTO_FAULT:
        raise
    except Exception as batch_error:
        if len(photos) == 1:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), {0: _reason(batch_error)}
        rows, failures = {}, {}
        for index, photo in enumerate(photos):
            try:
                rows[index] = run([photo])
            except NOT_A_PHOTO_FAULT:
                raise
            except Exception as exc:
                failures[index] = _reason(exc)
        if not rows:
            raise
        ok = sorted(rows)
        features = np.zeros((len(photos), rows[ok[0]][0].shape[1]), np.float32)
        fused = np.zeros((len(photos), rows[ok[0]][1].shape[1]), np.float32)
        for index in ok:
            features[index], fused[index] = rows[index][0][0], rows[index][1][0]
        return features, fused, failures


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _embed_photos(
    plan: _Plan, models: dict[int, SearchModel], report: IndexReport, *, record_only_new: bool
) -> set[int]:
    """Image side, batch by batch; returns the photos whose rows were written."""
    from ml.preprocess import ImageDecodeError

    written: set[int] = set()
    delay = getattr(settings, "INDEX_TEST_BATCH_DELAY_SECONDS", 0)
    side = max((int(model.config["preprocess"]["resize"]) for model in models.values()), default=None)
    for batch in chunked(plan.images, settings.EMBED_IMAGE_BATCH_SIZE):
        decoded = {}
        for image in batch:
            try:
                decoded[image.pk] = _read_photo(image, side)
            except (ImageDecodeError, FileNotFoundError) as exc:
                # Permanent: retrying an undecodable or missing file will not help.
                report.failures[image.pk] = _reason(exc)
        rows = []
        for version in plan.versions:
            todo = [image for image in batch if image.pk in plan.images_for[version.pk] and image.pk in decoded]
            if not todo:
                continue
            features, fused, failed = embed_images(models[version.pk], [decoded[image.pk] for image in todo])
            for index, image in enumerate(todo):
                if index in failed:
                    report.failures[image.pk] = failed[index]
                    continue
                rows.append(
                    ImageEmbedding(
                        image_id=image.pk,
                        product_id=image.product_id,
                        model_version_id=version.pk,
                        features=features[index],
                        embedding=fused[index],
                    )
                )
        if delay:  # test settings only: lets a test kill the worker in the middle of a batch
            time.sleep(delay)
        rows = [row for row in rows if row.image_id not in report.failures]
        written |= _write_photo_rows(batch, rows)
        if record_only_new:
            _record_failures({pk: reason for pk, reason in report.failures.items() if pk in {i.pk for i in batch}})
    return written


def _write_photo_rows(batch: Sequence[ProductImage], rows: list[ImageEmbedding]) -> set[int]:
    """Upsert, under a row lock, only photos that did not change since they were read."""
    with transaction.atomic():
        fresh = _unchanged_since_read(ProductImage, batch)
        rows = [row for row in rows if row.image_id in fresh]
        ImageEmbedding.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["image", "model_version"],
            update_fields=["features", "embedding", "product", "updated_at"],
        )
    return {row.image_id for row in rows}


def _record_failures(failures: dict[int, str]) -> None:
    """Backfill only: say why a photo failed without touching its dirty flag."""
    for pk, reason in failures.items():
        ProductImage.objects.filter(pk=pk, embedding_error="").update(embedding_error=reason)


def _text_features(plan: _Plan, models: dict[int, SearchModel]) -> dict[tuple[int, int], np.ndarray]:
    """Text side only for products whose text changed or that have no row for a version."""
    out = {}
    for version in plan.versions:
        ids = sorted(pk for pk in plan.text_for[version.pk] if pk in plan.products)
        for batch in chunked(ids, settings.EMBED_TEXT_BATCH_SIZE):
            texts = [product_text_of(plan.products[pk]) for pk in batch]
            rows = models[version.pk].text_features(texts, batch_size=settings.EMBED_TEXT_BATCH_SIZE)
            out.update({(version.pk, pk): row for pk, row in zip(batch, rows, strict=False)})
    return out


def embed_products(
    model, version: ModelVersion, product_ids: Sequence[int], text: dict[int, np.ndarray]
) -> list[ProductEmbedding]:
    """Fused product vectors from the stored photo features of `version` and the text
    features given (new) or stored (unchanged text). Call with the products locked."""
    from ml.model import FusionInput

    stored = dict(
        ProductEmbedding.objects.filter(
            product_id__in=[pk for pk in product_ids if pk not in text], model_version=version
        ).values_list("product_id", "text_features")
    )
    photo_features: dict[int, list[np.ndarray]] = defaultdict(list)
    for product_id, features in (
        ImageEmbedding.objects.filter(product_id__in=product_ids, model_version=version)
        .order_by("image__position", "image_id")
        .values_list("product_id", "features")
    ):
        photo_features[product_id].append(np.asarray(features, dtype=np.float32))
    ids, inputs = [], []
    for pk in product_ids:
        text_features = text[pk] if pk in text else stored.get(pk)
        if text_features is None:
            continue  # its row vanished meanwhile (a prune): the sweep's missing check redoes it
        ids.append(pk)
        inputs.append(
            FusionInput(
                image_features=np.stack(photo_features[pk]) if photo_features.get(pk) else None,
                text_features=np.asarray(text_features, dtype=np.float32),
            )
        )
    fused = model.fuse(inputs) if inputs else []
    return [
        ProductEmbedding(product_id=pk, model_version=version, text_features=item.text_features, embedding=vector)
        for pk, item, vector in zip(ids, inputs, fused, strict=False)
    ]


def _unchanged_since_read(
    model: type[Product] | type[ProductImage], rows: Iterable[Product | ProductImage]
) -> set[int]:
    """Lock the rows (no-key: reads and other locks go on) and keep those nobody marked
    again since they were read."""
    rows = list(rows)
    current = dict(
        model.objects.select_for_update(no_key=True)
        .filter(pk__in=[row.pk for row in rows])
        .order_by("pk")
        .values_list("pk", "embedding_marked_at")
    )
    return {row.pk for row in rows if current.get(row.pk) == row.embedding_marked_at}


def _write_product_rows(
    plan: _Plan, models: dict[int, SearchModel], text: dict[tuple[int, int], np.ndarray], fresh: set[int]
) -> set[int]:
    """Fuse and upsert the product vectors of every version; returns the products written."""
    fused_any: set[int] = set()
    for version in plan.versions:
        ids = sorted(pk for pk in plan.products_for[version.pk] if pk in fresh)
        rows = embed_products(
            models[version.pk], version, ids, {pk: text[(version.pk, pk)] for pk in ids if (version.pk, pk) in text}
        )
        ProductEmbedding.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["product", "model_version"],
            update_fields=["text_features", "embedding", "updated_at"],
        )
        fused_any.update(row.product_id for row in rows)
    return fused_any


def _clear_flags(plan: _Plan, fresh: set[int], photos_done: set[int], report: IndexReport) -> None:
    """Clear the flags of what is done; a photo that failed for good keeps its reason."""
    Product.objects.filter(pk__in=[pk for pk in fresh if plan.products[pk].embedding_dirty]).update(
        embedding_dirty=False, embedding_error=""
    )
    # A photo is done once its rows are written (or it failed for good) and its
    # product is fused here or marked for a newer task, which will fuse it.
    done = [
        image
        for image in plan.images
        if image.embedding_dirty and (image.pk in photos_done or image.pk in report.failures)
    ]
    unchanged = _unchanged_since_read(ProductImage, done)
    ProductImage.objects.filter(pk__in=[pk for pk in unchanged if pk not in report.failures]).update(
        embedding_dirty=False, embedding_error=""
    )
    for pk in sorted(unchanged & set(report.failures)):
        ProductImage.objects.filter(pk=pk).update(embedding_dirty=False, embedding_error=report.failures[pk])


def _fuse_products(
    plan: _Plan,
    models: dict[int, SearchModel],
    text: dict[tuple[int, int], np.ndarray],
    photos_done: set[int],
    report: IndexReport,
    *,
    clear_flags: bool,
) -> None:
    """One transaction: lock the products, fuse, upsert, and clear the flags of what is done."""
    with transaction.atomic():
        fresh = _unchanged_since_read(Product, plan.products.values())
        report.skipped += len(plan.products) - len(fresh)
        report.products_embedded += len(_write_product_rows(plan, models, text, fresh))
        if clear_flags:
            _clear_flags(plan, fresh, photos_done, report)


def index_catalog(
    product_ids: Iterable[int] = (),
    image_ids: Iterable[int] = (),
    versions: list[ModelVersion] | None = None,
    *,
    clear_flags: bool | None = None,
) -> IndexReport:
    """Embed what these photos and products still need, for every version that is being
    served or built (or only `versions`: a backfill, which leaves the flags alone)."""
    started = time.perf_counter()
    if clear_flags is None:
        clear_flags = versions is None
    versions = versions_to_index() if versions is None else versions
    report = IndexReport()
    plan = _plan(product_ids, image_ids, versions)
    report.skipped = plan.skipped
    if not plan.products:
        return report
    models = {version.pk: model_for_version(version) for version in versions}
    photos_done = _embed_photos(plan, models, report, record_only_new=not clear_flags)
    report.images_embedded = len(photos_done)
    text = _text_features(plan, models)
    _fuse_products(plan, models, text, photos_done, report, clear_flags=clear_flags)
    logger.info(
        "indexed %d photos, %d products for %s in %.2fs (%d failed, %d skipped)",
        report.images_embedded,
        report.products_embedded,
        ", ".join(v.version for v in versions),
        time.perf_counter() - started,
        len(report.failures),
        report.skipped,
    )
    return report


def backfill_version(version: ModelVersion, product_ids: Iterable[int], image_ids: Iterable[int]) -> IndexReport:
    """Fill in a version being built; flags stay for the regular tasks of every version."""
    return index_catalog(product_ids, image_ids, versions=[version], clear_flags=False)


def dirty_ids(older_than: timedelta | None = None) -> tuple[list[int], list[int]]:
    products = Product.objects.filter(embedding_dirty=True)
    images = ProductImage.objects.filter(embedding_dirty=True)
    if older_than is not None:
        cutoff = timezone.now() - older_than
        products = products.filter(embedding_marked_at__lt=cutoff)
        images = images.filter(embedding_marked_at__lt=cutoff)
    return list(products.values_list("pk", flat=True)), list(images.values_list("pk", flat=True))


def _missing(version: ModelVersion) -> tuple:
    products = Product.objects.exclude(
        Exists(ProductEmbedding.objects.filter(product=OuterRef("pk"), model_version=version))
    )
    images = ProductImage.objects.filter(embedding_error="").exclude(
        Exists(ImageEmbedding.objects.filter(image=OuterRef("pk"), model_version=version))
    )
    return products, images


def missing_ids(version: ModelVersion, older_than: timedelta | None = None) -> tuple[list[int], list[int]]:
    """Rows that have no embedding for `version` yet (a new install, or an upgrade backfill);
    photos that failed for good are not missing, they are failed."""
    products, images = _missing(version)
    if older_than is not None:
        cutoff = timezone.now() - older_than
        products = products.filter(embedding_marked_at__lt=cutoff)
        images = images.filter(embedding_marked_at__lt=cutoff)
    return list(products.values_list("pk", flat=True)), list(images.values_list("pk", flat=True))


def outstanding_counts(version: ModelVersion | None = None, products=None) -> tuple[int, int]:
    """(products, photos) that are marked, or have no row for `version`: what is left,
    in the whole catalog or among `products` (a queryset)."""
    version = version or active_version(create=False)
    selected = Product.objects.all() if products is None else Product.objects.filter(pk__in=products.values("pk"))
    images = ProductImage.objects.filter(product__in=selected.values("pk"))
    if version is None:
        return selected.filter(embedding_dirty=True).count(), images.filter(embedding_dirty=True).count()
    missing_products, missing_images = _missing(version)
    return (
        selected.filter(Q(embedding_dirty=True) | Q(pk__in=missing_products.values("pk"))).count(),
        images.filter(Q(embedding_dirty=True) | Q(pk__in=missing_images.values("pk"))).count(),
    )


def index_status(*, check_files: bool = True) -> dict:
    """Counts for `index_status` and /healthz; check_files also looks for photos whose file
    is gone from the media storage (a stat per photo: /healthz caches it)."""
    version = active_version(create=False)
    products = Product.objects.count()
    images = ProductImage.objects.count()
    embedded = ImageEmbedding.objects.filter(model_version=version).count() if version else 0
    pending = (
        Product.objects.filter(embedding_dirty=True).count() + ProductImage.objects.filter(embedding_dirty=True).count()
    )
    failed = (
        Product.objects.exclude(embedding_error="").count() + ProductImage.objects.exclude(embedding_error="").count()
    )
    status = {
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
    if check_files:
        status["photos_missing"] = len(missing_photo_files())
    return status


def backfill_progress(version: ModelVersion) -> tuple[int, int]:
    """(rows done, rows in all) of a version being built: products + photos."""
    missing_products, missing_images = _missing(version)
    total = Product.objects.count() + ProductImage.objects.filter(embedding_error="").count()
    return total - missing_products.count() - missing_images.count(), total


def backfill_complete(version: ModelVersion) -> bool:
    """The new version serves at least everything the active one serves. Rows missing
    from both (just created, their task on the way) are written for both versions by
    their own task, so they do not hold the switch back."""
    products, images = missing_ids(version)
    active = active_version(create=False)
    if active is not None and active.pk != version.pk and (products or images):
        active_products, active_images = missing_ids(active)
        return not set(products) - set(active_products) and not set(images) - set(active_images)
    return not products and not images


@transaction.atomic
def activate_version(version: ModelVersion) -> None:
    """The atomic switch: one transaction retires the old version and activates the new one."""
    list(
        ModelVersion.objects.select_for_update()
        .filter(Q(state=ModelVersion.State.ACTIVE) | Q(pk=version.pk))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).exclude(pk=version.pk).update(
        state=ModelVersion.State.RETIRED
    )
    version.state = ModelVersion.State.ACTIVE
    version.activated_at = timezone.now()
    version.save(update_fields=["state", "activated_at"])
    logger.info("model version %s is now serving search", version.version)
