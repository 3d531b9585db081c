"""Catalog changes -> indexing tasks, sent only after the change is committed.

The receivers (`indexing/receivers.py`) and the tasks (`indexing/tasks.py`) both use this
module; it names the task it sends instead of importing it, so nothing here imports back.

Everything one transaction changes (an admin save of a product and its photos, one
import row) goes out as one task; a bulk operation wrapped in `batched_index_tasks()`
sends tasks of about EMBED_IMAGE_BATCH_SIZE photos instead of a task per row.

A broker outage must never fail a merchant's save, nor make it slow: the dirty flag is
already committed, a failed send stops further sends for a short while, and the
periodic sweep enqueues the work once the broker is back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from celery import current_app
from django.conf import settings
from django.db import transaction

from catalog.models import ProductImage

logger = logging.getLogger(__name__)
# By name: the task module imports this one, so this one never imports it.
INDEX_TASK = "indexing.tasks.index_catalog_task"
_local = threading.local()
_broker_down_until = 0.0


class IndexBatch:
    """Product and photo ids waiting to be sent as indexing tasks."""

    def __init__(self, product_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> None:
        self.product_ids: set[int] = set(product_ids)
        self.image_ids: set[int] = set(image_ids)

    def __bool__(self) -> bool:
        return bool(self.product_ids or self.image_ids)

    def add(self, product_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> None:
        self.product_ids.update(product_ids)
        self.image_ids.update(image_ids)

    def send(self) -> bool:
        """One task per chunk; False when the broker refused (the rows stay marked)."""
        product_ids, image_ids = self.product_ids, self.image_ids
        self.product_ids, self.image_ids = set(), set()
        sent = True
        for chunk_products, chunk_images in index_chunks(product_ids, image_ids):
            sent = send_index_task(chunk_products, chunk_images) and sent
        return sent

    def __call__(self) -> None:
        """The on_commit hook of one transaction: hand the ids to a bulk batch, or send."""
        bulk = getattr(_local, "bulk", None)
        if bulk is None:
            self.send()
            return
        bulk.add(self.product_ids, self.image_ids)
        self.product_ids, self.image_ids = set(), set()
        # A full chunk goes now: the worker embeds while the import goes on.
        if (
            len(bulk.image_ids) >= settings.EMBED_IMAGE_BATCH_SIZE
            or len(bulk.product_ids) >= settings.EMBED_TEXT_BATCH_SIZE
        ):
            bulk.send()


def index_chunks(
    product_ids: Iterable[int], image_ids: Iterable[int], *, photos_per_chunk: int | None = None
) -> list[tuple[list[int], list[int]]]:
    """Split work into tasks of about `photos_per_chunk` photos, keeping each product with
    its photos so its fused vector is computed once."""
    photos_per_chunk = photos_per_chunk or settings.EMBED_IMAGE_BATCH_SIZE
    products_per_chunk = settings.EMBED_TEXT_BATCH_SIZE
    image_ids = set(image_ids)
    photos_of: dict[int, list[int]] = {product_id: [] for product_id in product_ids}
    for image_id, product_id in ProductImage.objects.filter(pk__in=image_ids).values_list("pk", "product_id"):
        photos_of.setdefault(product_id, []).append(image_id)
    chunks: list[tuple[list[int], list[int]]] = []
    products: list[int] = []
    photos: list[int] = []
    for product_id in sorted(photos_of):
        products.append(product_id)
        photos.extend(sorted(photos_of[product_id]))
        if len(photos) >= photos_per_chunk or len(products) >= products_per_chunk:
            chunks.append((products, photos))
            products, photos = [], []
    if products:
        chunks.append((products, photos))
    return chunks


def send_index_task(product_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> bool:
    global _broker_down_until
    product_ids, image_ids = sorted(set(product_ids)), sorted(set(image_ids))
    if not product_ids and not image_ids:
        return True
    if time.monotonic() < _broker_down_until:
        logger.debug("broker marked down: %d products / %d photos left for the sweep", len(product_ids), len(image_ids))
        return False
    try:
        publish_index_task(product_ids, image_ids)
        return True
    except Exception as exc:
        _broker_down_until = time.monotonic() + settings.INDEX_BROKER_BACKOFF_SECONDS
        logger.warning(
            "broker unavailable, %d products / %d photos stay marked for the sweep (no sends for %ss): %s",
            len(product_ids),
            len(image_ids),
            settings.INDEX_BROKER_BACKOFF_SECONDS,
            exc,
        )
        return False


def publish_index_task(product_ids: list[int], image_ids: list[int]) -> None:
    """Put one indexing task on the broker (raises when the broker is unavailable)."""
    current_app.send_task(INDEX_TASK, kwargs={"product_ids": product_ids, "image_ids": image_ids}, retry=False)


def reset_broker_backoff() -> None:
    global _broker_down_until
    _broker_down_until = 0.0


def enqueue_after_commit(product_ids: Iterable[int] = (), image_ids: Iterable[int] = ()) -> None:
    """Index these rows once the current transaction commits (at once outside one)."""
    connection = transaction.get_connection()
    batch = getattr(connection, "_search_index_batch", None)
    # One pending batch per transaction, found again while its hook is still registered.
    # Ids added inside a savepoint that rolls back may stay in it: a task for rows that
    # are gone or unchanged finds nothing to do.
    if (
        batch is None
        or not connection.in_atomic_block
        or not any(hook is batch for _, hook, *_ in connection.run_on_commit)
    ):
        batch = connection._search_index_batch = IndexBatch()
        batch.add(product_ids, image_ids)
        transaction.on_commit(batch, robust=True)
    else:
        batch.add(product_ids, image_ids)


@contextmanager
def batched_index_tasks() -> Iterator[IndexBatch]:
    """Collect the indexing work of a bulk operation (import, demo catalog) and send it
    in tasks of about EMBED_IMAGE_BATCH_SIZE photos as chunks fill up and at the end,
    instead of one task per row.

    Only committed rows are collected; what was committed before an error is still sent.
    """
    if getattr(_local, "bulk", None) is not None:  # nested: the outermost one sends
        yield _local.bulk
        return
    bulk = _local.bulk = IndexBatch()
    try:
        yield bulk
    finally:
        _local.bulk = None
        if bulk:
            transaction.on_commit(bulk.send, robust=True)
