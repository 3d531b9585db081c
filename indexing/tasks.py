"""Thin Celery tasks: they take ids, and services in indexing/services.py do the work.

Delivery is at least once (late acks, redelivery of a killed worker's task, the sweep);
the services make doing work twice harmless and cheap, so exactly one row per (photo or
product, model version) is what stays.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app, shared_task
from celery.signals import worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import services
from .dispatch import index_chunks, send_index_task
from .engine import active_version, warm_up_for_indexing
from .models import ModelVersion

logger = logging.getLogger(__name__)
# Worth retrying with backoff: the database restarting or a deadlock (OperationalError),
# a dropped connection, a storage hiccup. An undecodable photo is not an exception here:
# it is recorded on its row and the task succeeds.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, OSError)
RETRY = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 8,
    "acks_late": True,
}


@shared_task(bind=True, **RETRY)
def index_catalog_task(self, product_ids: list[int] | None = None, image_ids: list[int] | None = None) -> dict:
    report = services.index_catalog(product_ids or [], image_ids or [])
    return {
        "images": report.images_embedded,
        "products": report.products_embedded,
        "failed": len(report.failures),
        "skipped": report.skipped,
    }


@shared_task(bind=True, **RETRY)
def backfill_version_task(self, version_id: int, product_ids: list[int], image_ids: list[int]) -> dict:
    version = ModelVersion.objects.filter(pk=version_id).first()
    if version is None or version.state == ModelVersion.State.RETIRED:
        logger.info("version %s is gone or retired: backfill chunk dropped", version_id)
        return {"images": 0, "products": 0, "failed": 0, "skipped": len(product_ids) + len(image_ids)}
    report = services.backfill_version(version, product_ids, image_ids)
    return {
        "images": report.images_embedded,
        "products": report.products_embedded,
        "failed": len(report.failures),
        "skipped": report.skipped,
    }


def send_backfill_tasks(version: ModelVersion, product_ids: list[int], image_ids: list[int]) -> int:
    """Chunked backfill tasks for a version; raises when the broker is unavailable."""
    chunks = index_chunks(product_ids, image_ids)
    for chunk_products, chunk_images in chunks:
        backfill_version_task.apply_async(args=[version.pk, chunk_products, chunk_images], retry=False)
    return len(chunks)


def queued_tasks() -> int:
    """Messages waiting in the default queue (0 when it cannot be asked)."""
    try:
        with current_app.connection_for_read() as connection:
            queue = current_app.conf.task_default_queue
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
    except Exception:
        return 0


@shared_task(ignore_result=True)
def sweep_index_task() -> int:
    """Re-enqueue rows still marked (or missing a vector) after the grace period: work lost
    with a killed worker or a broker outage is done later.

    It waits while tasks are queued: rows marked before those tasks were sent are in
    them, and re-sending them would only add duplicate (if cheap) work behind a backlog.
    """
    waiting = queued_tasks()
    if waiting:
        logger.info("sweep: %d tasks still queued, nothing re-enqueued", waiting)
        return 0
    grace = timedelta(seconds=settings.INDEX_SWEEP_GRACE_SECONDS)
    product_ids, image_ids = services.dirty_ids(older_than=grace)
    version = active_version(create=False)
    if version is not None:
        missing_products, missing_images = services.missing_ids(version, older_than=grace)
        product_ids = sorted(set(product_ids) | set(missing_products))
        image_ids = sorted(set(image_ids) | set(missing_images))
    sent = 0
    for chunk_products, chunk_images in index_chunks(product_ids, image_ids):
        if not send_index_task(chunk_products, chunk_images):
            return sent
        sent += len(chunk_products) + len(chunk_images)
    for backfilling in ModelVersion.objects.filter(state=ModelVersion.State.BACKFILLING):
        missing_products, missing_images = services.missing_ids(backfilling, older_than=grace)
        if missing_products or missing_images:
            try:
                send_backfill_tasks(backfilling, missing_products, missing_images)
            except Exception as exc:
                logger.warning("sweep could not enqueue the backfill of %s: %s", backfilling.version, exc)
                return sent
            sent += len(missing_products) + len(missing_images)
    if sent:
        logger.info("sweep re-enqueued %d rows", sent)
    return sent


@worker_process_init.connect
def load_model_once(**kwargs) -> None:
    """Load and warm the model in the process that runs tasks (the solo worker, or each
    prefork child, never the forking parent), and say what it runs with."""
    try:
        logger.info("indexing worker ready: %s", warm_up_for_indexing())
    except Exception:
        logger.exception("could not warm the model up; the first task will load it")
