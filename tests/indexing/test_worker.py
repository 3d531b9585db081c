"""Indexing end to end with a real Redis and a real Celery worker process: the admin,
a worker killed mid-batch, a broker outage."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db.models import Count

from catalog.models import Product, ProductImage
from indexing import dispatch
from indexing.dispatch import batched_index_tasks
from indexing.models import ImageEmbedding, ProductEmbedding
from indexing.services import index_catalog, index_status
from search.query import SearchQuery, SearchUnavailable, search
from tests.conftest import make_photo, wait_until
from tests.factories import CategoryFactory, ProductFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class ThrowawayRedis:
    """A redis-server of this test alone, so stopping it disturbs nobody else."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str:
        from shop_search.embedded import redis_server_binary

        return shutil.which("redis-server") or redis_server_binary()

    def start(self) -> ThrowawayRedis:
        self.process = subprocess.Popen(
            [
                self.binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert wait_until(self._answers, timeout=10), "throwaway redis-server did not start"
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


@contextmanager
def celery_broker(url: str):
    """Point this process's Celery app (sends, pings) at another broker, then back."""
    from shop_search.celery import app

    previous = app.conf.broker_url, django_settings.CELERY_BROKER_URL

    def point(broker_url: str) -> None:
        app.conf.broker_url = django_settings.CELERY_BROKER_URL = broker_url
        app._pool, app.amqp._producer_pool = None, None
        dispatch.reset_broker_backoff()

    point(url)
    try:
        yield
    finally:
        point(previous[0])
        django_settings.CELERY_BROKER_URL = previous[1]


def indexed_catalog(count: int = 6) -> list[Product]:
    """Products already embedded in this process, so a search has something to rank."""
    ring = CategoryFactory(name="Ring")  # one category: the photo alone decides the order
    products = [ProductFactory(category=ring, photos=[1000 + seed]) for seed in range(count)]
    index_catalog([p.pk for p in products], ProductImage.objects.values_list("pk", flat=True))
    return products


def first_result(photo: bytes):
    try:
        results = search(SearchQuery(image=photo, k=3)).results
    except SearchUnavailable:
        return None
    return results[0].product if results else None


def one_row_per_item_and_version() -> bool:
    counts = (
        ImageEmbedding.objects.values("image_id", "model_version_id")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    product_counts = (
        ProductEmbedding.objects.values("product_id", "model_version_id")
        .annotate(n=Count("id"))
        .values_list("n", flat=True)
    )
    return set(counts) <= {1} and set(product_counts) <= {1}


def test_a_product_saved_in_the_admin_is_searchable_within_5_seconds(version, celery_worker, admin_client):
    indexed_catalog()
    celery_worker()
    photo = make_photo(4242)
    form = {
        "sku": "ADMIN-RING",
        "title": "Twisted rose gold band",
        "description": "",
        "category": CategoryFactory(name="Ring").pk,
        "metal": "rose_gold",
        "metal_text": "",
        "gemstone": "none",
        "gemstone_text": "",
        "price": "4999",
        "currency": "INR",
        "stock": 2,
        "is_active": "on",
        "images-TOTAL_FORMS": 1,
        "images-INITIAL_FORMS": 0,
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
        "images-0-image": SimpleUploadedFile("band.jpg", photo, content_type="image/jpeg"),
        "images-0-position": 0,
        "images-0-alt_text": "",
    }

    response = admin_client.post("/admin/catalog/product/add/", form)
    saved = time.monotonic()

    assert response.status_code == 302, response.content.decode()[:2000]
    product = Product.objects.get(sku="ADMIN-RING")
    found = wait_until(lambda: first_result(photo) == product, timeout=5)
    assert found, f"not first within 5s: {index_status()}"
    assert time.monotonic() - saved < 5
    assert index_status()["pending"] == 0


def test_a_worker_killed_mid_batch_is_restarted_and_every_photo_ends_up_embedded_once(version, celery_worker, settings):
    settings.EMBED_IMAGE_BATCH_SIZE = 4  # tasks of 4 photos...
    slow = {"EMBED_IMAGE_BATCH_SIZE": "1", "INDEX_TEST_BATCH_DELAY_SECONDS": "0.4"}  # ...of 4 slow batches
    worker = celery_worker(env=slow)
    with batched_index_tasks():
        for product in range(6):
            ProductFactory(photos=[2 * product, 2 * product + 1])

    assert wait_until(lambda: ImageEmbedding.objects.count() >= 2, timeout=30)
    worker.stop(signal.SIGKILL)
    assert ImageEmbedding.objects.count() < 12
    assert index_status()["pending"] > 0

    celery_worker(beat=True, env={"INDEX_SWEEP_INTERVAL_SECONDS": "1"})
    assert wait_until(lambda: index_status()["pending"] == 0, timeout=60), index_status()

    assert ImageEmbedding.objects.filter(model_version=version).count() == ProductImage.objects.count() == 12
    assert ProductEmbedding.objects.filter(model_version=version).count() == 6
    assert one_row_per_item_and_version()
    assert index_status()["failed"] == 0

    out = StringIO()  # and a full re-embed through the same worker, with its throughput
    call_command("reindex", "--timeout", "60", stdout=out, verbosity=0)
    assert "embedded 12 photos" in out.getvalue()
    assert "photos/s" in out.getvalue()
    assert index_status()["pending"] == 0
    assert one_row_per_item_and_version()


def test_with_redis_stopped_a_save_succeeds_and_the_sweep_indexes_it_once_redis_is_back(
    version, celery_worker, tmp_path
):
    indexed_catalog(3)
    redis = ThrowawayRedis(tmp_path).start()
    worker = None
    try:
        with celery_broker(redis.url):
            worker = celery_worker(beat=True, env={"REDIS_URL": redis.url, "INDEX_SWEEP_INTERVAL_SECONDS": "1"})
            redis.stop()

            photo = make_photo(777)
            product = ProductFactory(
                sku="DURING-OUTAGE", category=CategoryFactory(name="Ring"), photos=[]
            )  # saved while the broker is down
            from tests.factories import add_product_image_bytes

            add_product_image_bytes(product, photo)
            time.sleep(3)
            assert Product.objects.get(pk=product.pk).embedding_dirty
            assert not ProductEmbedding.objects.filter(product=product).exists()

            redis.start()
            assert wait_until(lambda: first_result(photo) == product, timeout=60), index_status()
            assert wait_until(lambda: index_status()["pending"] == 0, timeout=10)
            assert one_row_per_item_and_version()
            worker.stop()  # while its broker is still there to say goodbye to
    finally:
        if worker is not None:
            worker.stop()
        redis.stop()
