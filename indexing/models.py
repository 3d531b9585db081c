"""Embedding rows: one per (photo or product, model version), all in one shared space.

A row keeps the raw backbone features next to the fused search vector, so a text edit
re-runs only the text encoder and a photo change only the image encoder; the fused
product vector is recomputed from the stored features of both.

The HNSW cosine index is partial, one per model version (see `indexing/vector_index.py`):
a query for the active version walks a graph that holds only that version's rows, so
the version condition costs no recall during an upgrade.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from pgvector.django import VectorField

from catalog.models import Product, ProductImage


class ModelVersion(models.Model):
    class State(models.TextChoices):
        BACKFILLING = "backfilling", "Backfilling"
        ACTIVE = "active", "Active (serving search)"
        RETIRED = "retired", "Retired"

    version = models.CharField(max_length=120, unique=True, help_text="config name @ weights hash")
    model_name = models.CharField(max_length=80)
    dim = models.PositiveIntegerField()
    weights = models.JSONField(default=dict, blank=True, help_text="weight overrides it was loaded with")
    state = models.CharField(max_length=12, choices=State.choices, default=State.BACKFILLING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"], condition=models.Q(state="active"), name="one_active_model_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.version} ({self.state})"


class ImageEmbedding(models.Model):
    image = models.ForeignKey(ProductImage, on_delete=models.CASCADE, related_name="embeddings")
    # Denormalised so retrieval groups by product without a join.
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="image_embeddings")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    features = VectorField(help_text="raw image backbone features (model-specific width)")
    embedding = VectorField(dimensions=settings.SEARCH_EMBEDDING_DIM)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="one_image_embedding_per_version"),
        ]

    def __str__(self) -> str:
        return f"photo {self.image_id} @ version {self.model_version_id}"


class ProductEmbedding(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="embeddings")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    text_features = VectorField(help_text="raw text encoder features (model-specific width)")
    embedding = VectorField(dimensions=settings.SEARCH_EMBEDDING_DIM, help_text="fused photos + text")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "model_version"], name="one_product_embedding_per_version"),
        ]

    def __str__(self) -> str:
        return f"product {self.product_id} @ version {self.model_version_id}"
