"""Typed functions that change the catalog. Views, the admin and commands call these."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.text import slugify

from .choices import CURRENCY_SYMBOLS, DOLLAR_CURRENCIES, Currency, gemstone_from_text, metal_from_text
from .db import run_in_transaction
from .models import Category, Product, ProductImage
from .signals import reembedding_requested
from .uploads import CheckedImage
from .validators import validate_sku

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductData:
    sku: str
    title: str
    description: str
    category: str
    metal_text: str
    gemstone_text: str
    price: Decimal | None  # None: "Price on request"
    currency: str | None = None  # None: settings.SHOP_CURRENCY
    metal_color: str = ""
    stock: int | None = None


# "Price on request" and its usual spellings: the product is shown without a price.
PRICE_ON_REQUEST = re.compile(r"(price\s+)?(on|upon)\s+request|price\s+on\s+application|po[ar]", re.IGNORECASE)
_CURRENCY_TOKEN = re.compile(
    "|".join(
        [re.escape(symbol) for symbol in sorted(CURRENCY_SYMBOLS, key=len, reverse=True)]
        + [r"\$", r"(?<![A-Z])[A-Z]{3}(?![A-Z])"]
    )
)
# Digits grouped by one separator: 1.299.000, 1,299 or the Indian 1,23,456.
_GROUPED = re.compile(r"\d{1,3}(?P<sep>[.,])\d{3}(?:(?P=sep)\d{3})*|\d{1,2}(?:,\d{2})*,\d{3}")
_THOUSANDS_SPACES = re.compile(r"(?<=\d)[\s\u00a0\u202f'’](?=\d{3}(?!\d))")


def _price_currency(text: str, shop_currency: str | None) -> tuple[str, str | None]:
    """Take the currency written before or after the number: 'INR 450', '₹37,555', '13.144.000 ₫'."""
    rest, found = text.strip().upper(), set()
    if not any(char.isdigit() for char in rest):
        raise ValueError(f"price {text!r} is not a number")
    while True:
        head = _CURRENCY_TOKEN.match(rest)
        tail = next((m for m in _CURRENCY_TOKEN.finditer(rest) if m.end() == len(rest) and m.start() > 0), None)
        match = head or tail
        if match is None:
            break
        token = match.group()
        if token == "$":
            code = shop_currency if shop_currency in DOLLAR_CURRENCIES else Currency.USD
        elif token in CURRENCY_SYMBOLS:
            code = CURRENCY_SYMBOLS[token].value
        elif token in Currency.values:
            code = token
        else:
            raise ValueError(f"price {text!r}: {token} is not a currency this shop knows")
        found.add(code)
        rest = (rest[: match.start()] + rest[match.end() :]).strip()
    if len(found) > 1:
        raise ValueError(f"price {text!r} names two currencies")
    return rest, str(found.pop()) if found else None


def _price_number(text: str, number: str) -> Decimal:
    """'1,299.50', '1.299,50', '13.144.000', '1,23,456', '37,555' -> Decimal.

    With both separators the last one is the decimal point. A lone separator followed by
    exactly three digits groups thousands ('37,555', '649.000'), since jewelry is not
    priced in tenths of a cent; followed by one or two digits it is the decimal point.
    """
    number = _THOUSANDS_SPACES.sub("", number.removesuffix("/-").removesuffix(".-").removesuffix(",-"))
    if number.startswith("-"):
        raise ValueError(f"price {text!r} must be zero or more")
    if not re.fullmatch(r"\d[\d.,]*", number):
        raise ValueError(f"price {text!r} is not a number")
    separators = re.findall(r"[.,]", number)
    whole, fraction = number, ""
    if separators:
        head, _, tail = number.rpartition(separators[-1])
        if len(set(separators)) == 2:  # '1,299.50', '1.299,50': the last one is the decimal point
            decimal = True
        elif len(separators) > 1:  # '13.144.000', '1,23,456': all of them group digits
            decimal = False
        else:  # '37,555' groups thousands; '1299,50' and '0.500' have a decimal point
            decimal = len(tail) != 3 or head == "0"
        if decimal:
            whole, fraction = head, tail
    if not whole.isdigit() and not _GROUPED.fullmatch(whole):
        raise ValueError(f"price {text!r} is not a number (its digit groups are uneven)")
    return Decimal(re.sub(r"[.,]", "", whole) + ("." + fraction if fraction else ""))


def parse_price(text: str, shop_currency: str | None = None) -> tuple[Decimal | None, str | None]:
    """A merchant's price as written -> (amount or None for "price on request", currency or None).

    '₹37,555', '$1,200.00', '13.144.000 ₫', '31052000 VND', '1.299,50 €', 'INR 450', '' and
    'Price on request' all parse. The currency is returned as written (or None); whether it
    is the shop's is the caller's decision.
    """
    if not (text or "").strip() or PRICE_ON_REQUEST.fullmatch(text.strip()):
        return None, None
    number, currency = _price_currency(text, shop_currency)
    price = _price_number(text, number)
    if not price.is_finite():
        raise ValueError(f"price {text!r} is not a number")
    if price >= Decimal("1e10"):
        raise ValueError(f"price {text!r} is too large")
    if price != price.quantize(Decimal("0.01")):
        raise ValueError(f"price {text!r} has more than two decimals")
    return price.quantize(Decimal("0.01")), currency


def get_or_create_category(name: str) -> Category:
    name = " ".join(name.split()).strip()
    if not name:
        raise ValueError("category is empty")
    existing = Category.objects.filter(name__iexact=name).first()
    if existing:
        return existing
    # ASCII slugs (URLs, the API's slug filter); a name in another script ("अंगूठी") has
    # none, so it gets "category-2", "category-3"... rather than merging with another.
    base = slugify(name.replace("đ", "d").replace("Đ", "D"))[:90] or "category"
    slug, number = base, 1
    while Category.objects.filter(slug=slug).exists():
        number += 1
        slug = f"{base}-{number}"
    return Category.objects.create(name=name, slug=slug)


@transaction.atomic
def upsert_product(data: ProductData) -> tuple[Product, str]:
    """Create or update by sku: 'created', 'updated' or 'unchanged' (which saves nothing).

    Raises ValidationError (code ``invalid_sku``) for a SKU that breaks the SKU rule."""
    validate_sku(data.sku)
    category = get_or_create_category(data.category)
    values = {
        "title": data.title.strip(),
        "description": data.description.strip(),
        "category_id": category.pk,
        "metal": metal_from_text(data.metal_text, data.metal_color),
        "metal_text": " ".join(part for part in (data.metal_color.strip(), data.metal_text.strip()) if part)[:100],
        # "pearl, cubic zirconia": merchants list the main stone first.
        "gemstone": gemstone_from_text(data.gemstone_text.split(",")[0]),
        "gemstone_text": data.gemstone_text.strip()[:100],
        "price": data.price,
        "currency": data.currency or settings.SHOP_CURRENCY,
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
    image.image = ContentFile(checked.data, name=f"{checked.sha256}.{checked.extension}")  # written on save
    image.width, image.height = checked.width, checked.height
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError as exc:
        # The same photo added to the same product by someone else a moment ago: it is there.
        existing = ProductImage.objects.filter(product=product, content_hash=checked.sha256).first()
        if existing is None or "unique_photo_per_product" not in str(exc):
            raise
        return existing, False
    return image, True


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


def delete_products(product_ids: Iterable[int]) -> int:
    """Delete products with their photos (files go after commit), safely next to an import,
    another admin or the indexer writing rows that point at them.

    The products, then their photos, are locked first (in id order): a writer that is about
    to attach a photo or an embedding row to one of them waits for the delete (and then finds
    it gone) instead of slipping a row in between Django collecting the related rows and
    deleting them, which failed the delete's commit with a foreign-key error. A deadlock is
    retried. Returns the number of products deleted."""
    ids = sorted(set(product_ids))

    def delete() -> int:
        locked = list(
            Product.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True)
        )
        list(ProductImage.objects.select_for_update().filter(product_id__in=locked).order_by("pk").values_list("pk"))
        Product.objects.filter(pk__in=locked).delete()
        return len(locked)

    return run_in_transaction(delete, what="delete products")


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
