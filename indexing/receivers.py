"""Catalog changes -> indexing work, queued to be sent after the change commits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver
from django.utils import timezone

from catalog.models import Product, ProductImage
from catalog.signals import reembedding_requested

from .dispatch import enqueue_after_commit


@receiver(post_save, sender=Product)
def product_saved(sender: type[Product], instance: Product, **kwargs: Any) -> None:
    if instance.embedding_dirty and not kwargs.get("raw"):
        enqueue_after_commit(product_ids=[instance.pk])


@receiver(post_save, sender=ProductImage)
def product_image_saved(sender: type[ProductImage], instance: ProductImage, **kwargs: Any) -> None:
    if instance.embedding_dirty and not kwargs.get("raw"):
        enqueue_after_commit(image_ids=[instance.pk])


@receiver(pre_delete, sender=ProductImage)
def product_image_deleted(sender: type[ProductImage], instance: ProductImage, **kwargs: Any) -> None:
    """The fused product vector still holds the deleted photo: mark the product so it is
    recomputed. Before the delete, so rows are locked product first, like everywhere."""
    if Product.objects.filter(pk=instance.product_id).update(
        embedding_dirty=True, embedding_marked_at=timezone.now(), embedding_error=""
    ):
        enqueue_after_commit(product_ids=[instance.product_id])


@receiver(reembedding_requested)
def reembedding_was_requested(
    sender: object, product_ids: Iterable[int] = (), image_ids: Iterable[int] = (), **kwargs: Any
) -> None:
    enqueue_after_commit(product_ids=product_ids, image_ids=image_ids)
