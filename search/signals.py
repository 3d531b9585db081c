"""Catalog changes -> indexing tasks, sent only after the change is committed.

A broker outage must never fail a merchant's save: the dirty flag is already committed,
and the periodic sweep enqueues the work once the broker is back.
"""

from __future__ import annotations

import logging
from typing import Iterable

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from catalog.models import Product, ProductImage

logger = logging.getLogger(__name__)


def send_index_task(product_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> bool:
    from .tasks import index_catalog_task

    product_ids, image_ids = sorted(set(product_ids)), sorted(set(image_ids))
    if not product_ids and not image_ids:
        return True
    try:
        index_catalog_task.apply_async(kwargs={"product_ids": product_ids, "image_ids": image_ids}, retry=False)
        return True
    except Exception as exc:  # broker down: the sweep will pick the rows up later
        logger.warning(
            "broker unavailable, %d products / %d photos stay marked for the sweep: %s",
            len(product_ids), len(image_ids), exc,
        )
        return False


def enqueue_after_commit(product_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> None:
    product_ids, image_ids = list(product_ids), list(image_ids)
    transaction.on_commit(lambda: send_index_task(product_ids, image_ids))


@receiver(post_save, sender=Product)
def product_saved(sender, instance: Product, **kwargs) -> None:
    if instance.embedding_dirty and not kwargs.get("raw"):
        enqueue_after_commit(product_ids=[instance.pk])


@receiver(post_save, sender=ProductImage)
def product_image_saved(sender, instance: ProductImage, **kwargs) -> None:
    if instance.embedding_dirty and not kwargs.get("raw"):
        enqueue_after_commit(image_ids=[instance.pk])


@receiver(post_delete, sender=ProductImage)
def product_image_deleted(sender, instance: ProductImage, **kwargs) -> None:
    # The fused product vector still holds the deleted photo: recompute it.
    product = Product.objects.filter(pk=instance.product_id).first()
    if product is not None:
        product.mark_dirty()
        Product.objects.filter(pk=product.pk).update(
            embedding_dirty=True, embedding_marked_at=product.embedding_marked_at, embedding_error=""
        )
        enqueue_after_commit(product_ids=[product.pk])
