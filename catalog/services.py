"""Typed functions that change the catalog. Views, the admin and commands call these."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from .choices import Currency, gemstone_from_text, metal_from_text
from .models import Category, Product, ProductImage
from .signals import reembedding_requested
from .uploads import CheckedImage, check_image_upload

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductData:
    sku: str
    title: str
    description: str
    category: str
    metal_text: str
    gemstone_text: str
    price: Decimal
    currency: str = Currency.INR
    metal_color: str = ""
    stock: int | None = None


def parse_price(text: str) -> tuple[Decimal, str | None]:
    """'1,299.00', 'INR 1299', '1299 EUR' -> (Decimal, currency or None)."""
    cleaned = (text or "").strip().upper()
    currency = None
    for code in Currency.values:
        if cleaned.startswith(code) or cleaned.endswith(code):
            currency = code
            cleaned = cleaned.replace(code, "").strip()
    cleaned = cleaned.replace(",", "").replace("₹", "").replace("$", "").replace("€", "").replace("£", "")
    try:
        price = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"price {text!r} is not a number") from None
    if not price.is_finite() or price < 0:
        raise ValueError(f"price {text!r} must be zero or more")
    if price >= Decimal("1e10"):
        raise ValueError(f"price {text!r} is too large")
    return price.quantize(Decimal("0.01")), currency


def get_or_create_category(name: str) -> Category:
    name = " ".join(name.split()).strip()
    if not name:
        raise ValueError("category is empty")
    existing = Category.objects.filter(name__iexact=name).first()
    if existing:
        return existing
    category, _ = Category.objects.get_or_create(slug=slugify(name)[:100] or "category", defaults={"name": name})
    return category


@transaction.atomic
def upsert_product(data: ProductData) -> tuple[Product, str]:
    """Create or update by sku: 'created', 'updated' or 'unchanged' (which saves nothing)."""
    category = get_or_create_category(data.category)
    values = {
        "title": data.title.strip(),
        "description": data.description.strip(),
        "category_id": category.pk,
        "metal": metal_from_text(data.metal_text, data.metal_color),
        "metal_text": " ".join(part for part in (data.metal_color.strip(), data.metal_text.strip()) if part)[:100],
        "gemstone": gemstone_from_text(data.gemstone_text),
        "gemstone_text": data.gemstone_text.strip()[:100],
        "price": data.price,
        "currency": data.currency,
    }
    if data.stock is not None:
        values["stock"] = data.stock
    product = Product.objects.select_for_update().filter(sku=data.sku).first()
    if product is None:
        return Product.objects.create(sku=data.sku, **values), "created"
    changed = [name for name, value in values.items() if getattr(product, name) != value]
    for name in changed:
        setattr(product, name, values[name])
    if changed:
        product.save()
    return product, "updated" if changed else "unchanged"


@transaction.atomic
def add_product_image(
    product: Product, checked: CheckedImage, *, position: int | None = None
) -> tuple[ProductImage, bool]:
    """Attach a validated photo; the same photo uploaded twice is stored once."""
    existing = ProductImage.objects.filter(product=product, content_hash=checked.sha256).first()
    if existing and existing.file_missing:
        # The row is there but its file is gone (a lost disk, a copy that missed media/):
        # the same photo imported again restores the file, and the photo is embedded again.
        existing.image.save(f"{checked.sha256}.{checked.extension}", ContentFile(checked.data), save=False)
        existing.width, existing.height = checked.width, checked.height
        existing.mark_dirty()
        existing.save()
        logger.info("photo %s of %s restored from a re-import", existing.pk, product.sku)
        return existing, True
    if existing:
        return existing, False
    if position is None:
        top = product.images.aggregate(top=Max("position"))["top"]
        position = 0 if top is None else top + 1
    image = ProductImage(product=product, position=position, content_hash=checked.sha256, format=checked.format)
    image.image.save(f"{checked.sha256}.{checked.extension}", ContentFile(checked.data), save=False)
    image.width, image.height = checked.width, checked.height
    image.save()
    return image, True


def add_product_image_bytes(product: Product, data: bytes, *, position: int | None = None) -> tuple[ProductImage, bool]:
    return add_product_image(product, check_image_upload(data), position=position)


@transaction.atomic
def sync_product_images(product: Product, photos: list[CheckedImage]) -> bool:
    """Make the product's photos exactly `photos`, in order. Returns True when anything changed."""
    changed = False
    wanted = {photo.sha256: index for index, photo in enumerate(photos)}
    for image in product.images.all():
        if image.content_hash not in wanted:
            image.delete()
            changed = True
        elif image.position != wanted[image.content_hash]:
            image.position = wanted[image.content_hash]
            image.save(update_fields=["position"])
            changed = True
    for index, photo in enumerate(photos):
        _, created = add_product_image(product, photo, position=index)
        changed = changed or created
    return changed


def missing_photo_files(images: Iterable[ProductImage] | None = None) -> list[ProductImage]:
    """Photos whose row exists but whose file is not in the media storage. They cannot be
    embedded or shown; importing the same photo again restores the file."""
    rows = ProductImage.objects.only("pk", "image", "product_id") if images is None else images
    return [image for image in rows if image.file_missing]


def flag_for_reembedding(product_ids: Iterable[int]) -> tuple[int, list[int]]:
    """Flag products and all their photos dirty, so a crash or a lost task leaves them for
    the sweep. Returns (products flagged, their photo ids); sending work is the caller's."""
    ids = list(product_ids)
    now = timezone.now()
    with transaction.atomic():
        count = Product.objects.filter(pk__in=ids).update(
            embedding_dirty=True, embedding_marked_at=now, embedding_error=""
        )
        image_ids = list(ProductImage.objects.filter(product_id__in=ids).values_list("pk", flat=True))
        ProductImage.objects.filter(pk__in=image_ids).update(
            embedding_dirty=True, embedding_marked_at=now, embedding_error=""
        )
    return count, image_ids


def mark_products_for_reembedding(product_ids: Iterable[int]) -> int:
    """Flag products and their photos dirty, and say so (`reembedding_requested`): the
    indexer listens and sends the work after commit."""
    ids = list(product_ids)
    with transaction.atomic():
        count, image_ids = flag_for_reembedding(ids)
        reembedding_requested.send(sender=Product, product_ids=ids, image_ids=image_ids)
    return count
