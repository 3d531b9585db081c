"""The shop's catalog: categories, products and their photos.

Embedding rows live in the search app; here a product or photo only records that it
needs (re-)embedding (`embedding_dirty`) and why it failed, if it did.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from .choices import Currency, Gemstone, IndexState, Metal
from .searchable import text_source_fields
from .uploads import FORMAT_EXTENSIONS


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
    sku = models.CharField(max_length=64, unique=True)
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    metal = models.CharField(max_length=20, choices=Metal.choices, default=Metal.OTHER)
    metal_text = models.CharField(max_length=100, blank=True, default="", help_text="As the merchant wrote it")
    gemstone = models.CharField(max_length=20, choices=Gemstone.choices, default=Gemstone.NONE)
    gemstone_text = models.CharField(max_length=100, blank=True, default="", help_text="As the merchant wrote it")
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, choices=Currency.choices, default=Currency.INR)
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

    def __str__(self) -> str:
        return f"{self.sku} {self.title}"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_text = instance._text_signature()
        return instance

    def _text_signature(self) -> tuple:
        return tuple(getattr(self, name, None) for name in text_source_fields())

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
        return reverse(settings.CATALOG_PRODUCT_URL_NAME, args=[self.sku])

    @property
    def in_stock(self) -> bool:
        return self.stock > 0

    @property
    def primary_image(self) -> ProductImage | None:
        images = list(self.images.all()[:1])
        return images[0] if images else None

    @property
    def index_state(self) -> str:
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

    @property
    def file_missing(self) -> bool:
        """The row exists but its file is not in the media storage (MEDIA_ROOT)."""
        return not self.image or not self.image.storage.exists(self.image.name)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_hash = instance.content_hash
        return instance

    def save(self, *args, **kwargs) -> None:
        if not self.content_hash and self.image:
            self.image.open("rb")
            self.image.seek(0)
            self.content_hash = hashlib.sha256(self.image.read()).hexdigest()
            self.image.seek(0)
        # A new photo, or a replaced file, must be embedded; reordering needs nothing.
        if self.content_hash != getattr(self, "_loaded_hash", None):
            self.mark_dirty()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {
                    *kwargs["update_fields"],
                    "embedding_dirty",
                    "embedding_marked_at",
                    "embedding_error",
                }
        super().save(*args, **kwargs)
        self._loaded_hash = self.content_hash


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
