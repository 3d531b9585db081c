"""The shop's catalog: categories, products and their photos.

Embedding rows live in the search app; here a product or photo only records that it
needs (re-)embedding (`embedding_dirty`) and why it failed, if it did.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from urllib.parse import quote

from django.conf import settings
from django.db import models, transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from .choices import Currency, Gemstone, IndexState, Metal
from .db import lock_photo_content
from .photos import delete_file_after_commit, stored_file_hash
from .searchable import text_source_fields
from .uploads import FORMAT_EXTENSIONS
from .validators import SKU_DATABASE_REGEX, SKU_MAX_LENGTH, SKU_RULE, validate_sku

logger = logging.getLogger(__name__)


def shop_currency() -> str:
    """The default currency of a new product: the one the shop sells in."""
    return settings.SHOP_CURRENCY


class Category(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class DirtyTracking(models.Model):
    """A row that must be embedded again: the flag survives crashes; the sweep finds it."""

    embedding_dirty = models.BooleanField(default=True, db_index=True)
    embedding_marked_at = models.DateTimeField(default=timezone.now)
    embedding_error = models.TextField(blank=True, default="")

    class Meta:
        abstract = True

    def mark_dirty(self) -> None:
        self.embedding_dirty = True
        self.embedding_marked_at = timezone.now()
        self.embedding_error = ""


class Product(DirtyTracking):
    sku = models.CharField(max_length=SKU_MAX_LENGTH, unique=True, validators=[validate_sku], help_text=SKU_RULE)
    legacy_sku = models.CharField(
        max_length=64,
        blank=True,
        default="",
        editable=False,
        help_text="The SKU as it was stored before the SKU rule (migration 0005 rewrote it); empty if it complied",
    )
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    metal = models.CharField(max_length=20, choices=Metal.choices, default=Metal.OTHER)
    metal_text = models.CharField(max_length=100, blank=True, default="", help_text="As the merchant wrote it")
    gemstone = models.CharField(max_length=20, choices=Gemstone.choices, default=Gemstone.NONE)
    gemstone_text = models.CharField(max_length=100, blank=True, default="", help_text="As the merchant wrote it")
    price = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Leave empty for “Price on request”."
    )
    currency = models.CharField(max_length=3, choices=Currency.choices, default=shop_currency)
    stock = models.PositiveIntegerField(default=1)
    is_active = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        indexes = [
            models.Index(fields=["category", "metal", "gemstone"]),
            models.Index(fields=["price"]),
        ]
        constraints = [
            # The rule again, in the database: a bulk update or a raw write cannot store a SKU
            # that would break the product's address.
            models.CheckConstraint(
                condition=models.Q(sku__regex=SKU_DATABASE_REGEX) & ~models.Q(sku__in=[".", ".."]),
                name="sku_follows_sku_rule",
                violation_error_message=SKU_RULE,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.title}"

    def save(self, *args, **kwargs) -> None:
        # Only what the text encoder reads makes the text side dirty; a price or stock
        # change is a filter value and needs no new embedding.
        if getattr(self, "_loaded_text", None) != self._text_signature():
            self.mark_dirty()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {
                    *kwargs["update_fields"],
                    "embedding_dirty",
                    "embedding_marked_at",
                    "embedding_error",
                }
        super().save(*args, **kwargs)
        self._loaded_text = self._text_signature()

    def get_absolute_url(self) -> str:
        """The product's page. Never raises, whatever the SKU: one that breaks the SKU rule
        (only an unsaved instance can hold one: the database refuses them) gets its escaped
        address, which answers 404, instead of a NoReverseMatch that breaks every page
        listing the product."""
        try:
            return reverse(settings.CATALOG_PRODUCT_URL_NAME, args=[self.sku])
        except NoReverseMatch:
            logger.warning("product %s: SKU %r breaks the SKU rule; linking to an escaped address", self.pk, self.sku)
            placeholder = reverse(settings.CATALOG_PRODUCT_URL_NAME, args=["-"])
            head, _, tail = placeholder.rpartition("-")
            return head + quote(str(self.sku), safe="") + tail

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_text = instance._text_signature()
        return instance

    def _text_signature(self) -> tuple:
        return tuple(getattr(self, name, None) for name in text_source_fields())

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def primary_image(self) -> ProductImage | None:
        images = list(self.images.all()[:1])
        return images[0] if images else None

    @property
    def index_state(self) -> IndexState:
        images = list(self.images.all())
        if self.embedding_error or any(image.embedding_error for image in images):
            return IndexState.FAILED
        if self.embedding_dirty or any(image.embedding_dirty for image in images):
            return IndexState.PENDING
        return IndexState.INDEXED


def product_image_path(instance: ProductImage, filename: str) -> str:
    """Random, content-derived names: never the uploader's file name, never guessable."""
    digest = instance.content_hash or secrets.token_hex(32)
    extension = FORMAT_EXTENSIONS.get(instance.format, "jpg")
    return f"products/{digest[:2]}/{digest}.{extension}"


def _is_committed(file: models.fields.files.FieldFile) -> bool:
    """Whether the file is in storage already (Django's FieldFile flag, untyped)."""
    return bool(getattr(file, "_committed", True))


class ProductImage(DirtyTracking):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="images")
    image = models.ImageField(upload_to=product_image_path, width_field="width", height_field="height")
    position = models.PositiveSmallIntegerField(default=0)
    width = models.PositiveIntegerField(default=0)
    height = models.PositiveIntegerField(default=0)
    format = models.CharField(max_length=10, default="JPEG")
    content_hash = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the stored file")
    alt_text = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["product", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["product", "content_hash"], name="unique_photo_per_product"),
        ]

    def __str__(self) -> str:
        return f"{self.product.sku} photo {self.position}"

    def save(self, *args, **kwargs) -> None:
        if not self.content_hash and self.image:
            self.image.open("rb")
            self.image.seek(0)
            self.content_hash = hashlib.sha256(self.image.read()).hexdigest()
            self.image.seek(0)
        # A new photo, or a replaced file, must be embedded; reordering needs nothing.
        # Loaded without its hash (.only()): the stored one is the one it was loaded with.
        loaded_hash = getattr(self, "_loaded_hash", self.content_hash if self.pk else None)
        if self.content_hash != loaded_hash:
            self.mark_dirty()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {
                    *kwargs["update_fields"],
                    "embedding_dirty",
                    "embedding_marked_at",
                    "embedding_error",
                }
        with transaction.atomic():
            # Until commit: a delete of a file of this content waits for this row to be visible.
            lock_photo_content(self.content_hash)
            writing = bool(self.image) and not _is_committed(self.image)
            if writing and self._reuse_stored_file():
                writing = False
            try:
                super().save(*args, **kwargs)
            except Exception:
                if writing and _is_committed(self.image) and self.image.name:  # written for this row alone
                    self.image.storage.delete(self.image.name)
                raise
        old_name = getattr(self, "_loaded_name", None)
        if old_name and old_name != self.image.name:  # a replaced file: the old one may now be unused
            delete_file_after_commit(self.image.storage, old_name, getattr(self, "_loaded_hash", "") or "")
        self._loaded_hash = self.content_hash
        self._loaded_name = self.image.name

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        # Only what was loaded: reading a deferred field here would query (and recurse).
        if "content_hash" in instance.__dict__:
            instance._loaded_hash = instance.content_hash
        if "image" in instance.__dict__:
            instance._loaded_name = instance.image.name
        return instance

    def _reuse_stored_file(self) -> bool:
        """Photos are stored once per content: point at the stored file of the same bytes
        (by name and by hash) instead of writing a copy."""
        name = product_image_path(self, "")
        if not self.content_hash or stored_file_hash(self.image.storage, name) != self.content_hash:
            return False
        self.image.name = name
        self.image._committed = True  # type: ignore[attr-defined]  # FieldFile's own flag: nothing to write
        return True

    @property
    def file_missing(self) -> bool:
        """The row exists but its file is not in the media storage (MEDIA_ROOT)."""
        return not self.image.name or not self.image.storage.exists(self.image.name)


class DemoCatalogSeed(models.Model):
    """Start-up seeds the demo catalogue once, into an empty catalogue, and records it
    here: from then on the merchant's edits and deletions are theirs to keep. Only
    `manage.py load_demo_catalog` (explicit) or `make clean-data` brings it back."""

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    products = models.PositiveIntegerField(default=0, help_text="0: the catalogue was not empty, nothing was seeded")

    class Meta:
        verbose_name = "demo catalogue seed"

    def __str__(self) -> str:
        return f"demo catalogue seeded {self.started_at:%Y-%m-%d} ({self.products} products)"
