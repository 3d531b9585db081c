"""Thin Celery tasks: they take ids, and services in search/indexing.py do the work."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import indexing
from .models import ModelVersion
from .signals import send_index_task

logger = logging.getLogger(__name__)
TRANSIENT_ERRORS = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
SWEEP_CHUNK = 64


@shared_task(
    bind=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, retry_backoff_max=60, max_retries=8,
    acks_late=True,
)
def index_catalog_task(self, product_ids: list[int] | None = None, image_ids: list[int] | None = None) -> dict:
    report = indexing.index_catalog(product_ids or [], image_ids or [])
    return {"images": report.images_embedded, "products": report.products_embedded, "failed": len(report.failures)}


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=2, max_retries=8, acks_late=True)
def backfill_version_task(version_id: int, product_ids: list[int], image_ids: list[int]) -> None:
    version = ModelVersion.objects.get(pk=version_id)
    indexing.index_catalog(product_ids, image_ids, versions=[version])


@shared_task(ignore_result=True)
def sweep_index_task() -> int:
    """Re-enqueue rows still marked after the grace period: work lost with a killed
    worker or a broker outage is done later, and upserts make doing it twice harmless."""
    product_ids, image_ids = indexing.dirty_ids(older_than=timedelta(seconds=settings.INDEX_SWEEP_GRACE_SECONDS))
    version = indexing.active_version(create=False)
    if version is not None:
        missing_products, missing_images = indexing.missing_ids(version)
        product_ids = sorted(set(product_ids) | set(missing_products))
        image_ids = sorted(set(image_ids) | set(missing_images))
    for start in range(0, max(len(product_ids), len(image_ids)), SWEEP_CHUNK):
        send_index_task(product_ids[start : start + SWEEP_CHUNK], image_ids[start : start + SWEEP_CHUNK])
    if product_ids or image_ids:
        logger.info("sweep re-enqueued %d products, %d photos", len(product_ids), len(image_ids))
    return len(product_ids) + len(image_ids)
