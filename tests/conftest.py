"""Shared fixtures: real PostgreSQL + pgvector, real Redis, real Celery workers, photos
generated in code (no binaries committed)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent


def make_photo(seed: int = 0, size: tuple[int, int] = (320, 320), fmt: str = "JPEG", mode: str = "RGB") -> bytes:
    """A jewelry-ish photo: a coloured ring shape on white, different for every seed."""
    import random

    rng = random.Random(seed)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    colour = tuple(rng.randrange(40, 230) for _ in range(3))
    w, h = size
    cx, cy, r = w // 2 + rng.randrange(-20, 20), h // 2 + rng.randrange(-20, 20), min(w, h) // rng.choice([3, 4])
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(3, r // rng.choice([3, 5, 8])))
    for _ in range(rng.randrange(1, 5)):
        x, y = rng.randrange(w), rng.randrange(h)
        draw.rectangle(
            [x, y, x + rng.randrange(5, 40), y + rng.randrange(5, 40)], fill=tuple(rng.randrange(256) for _ in range(3))
        )
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def photo():
    return make_photo


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def redis_client():
    """The broker's Redis database, emptied around the test, and the query cache with it
    (query vectors and photos live in their own database: a cached vector would hide what
    the test checks)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    query_cache = redis.Redis.from_url(settings.QUERY_CACHE_URL)
    client.flushdb()
    query_cache.flushdb()
    yield client
    client.flushdb()
    query_cache.flushdb()


def database_url(settings_dict: dict) -> str:
    host = settings_dict.get("HOST") or settings_dict.get("OPTIONS", {}).get("host", "")
    port = settings_dict.get("PORT") or ""
    user = settings_dict.get("USER") or "postgres"
    location = quote(host, safe="") + (f":{port}" if port else "")
    return f"postgres://{user}@{location}/{settings_dict['NAME']}"


class WorkerProcess:
    """A real `celery worker` subprocess on the test database and the test Redis."""

    def __init__(self, media_root: Path, extra_env: dict | None = None) -> None:
        from django.db import connection

        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "shop_search.settings.test",
            "DATABASE_URL": database_url(connection.settings_dict),
            "REDIS_URL": settings.REDIS_URL,
            "MEDIA_ROOT": str(media_root),
            **(extra_env or {}),
        }
        self.process: subprocess.Popen | None = None
        self.log = media_root.parent / "worker.log"

    def start(self, *, beat: bool = False) -> WorkerProcess:
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "shop_search",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        if beat:
            command += ["--beat", "--schedule", str(self.log.parent / "beat-schedule")]
        with open(self.log, "ab") as log:  # the worker holds its own copy of the file
            self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        from shop_search.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if app.control.ping(timeout=0.5):
                return
            assert self.process.poll() is None, self.log.read_text()[-3000:]
        raise AssertionError("worker did not answer: " + self.log.read_text()[-3000:])

    def stop(self, sig: int = 15) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def celery_worker(transactional_db, redis_client, settings, tmp_path):
    """Start a worker and wait until it answers; stop it afterwards."""
    os.environ.pop("MEDIA_ROOT", None)
    workers: list[WorkerProcess] = []

    def start(**kwargs) -> WorkerProcess:
        worker = WorkerProcess(Path(settings.MEDIA_ROOT), kwargs.pop("env", None)).start(**kwargs)
        workers.append(worker)
        worker.wait_ready()
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture
def version(db):
    from indexing.engine import active_version

    return active_version()


DEFAULT_MODEL = "effnet-lite2-minilm"


@pytest.fixture
def demo_catalog(db, settings, redis_client):
    """Real demo products embedded with the real default model (packaged weights): for
    tests that a shopper's photo finds its product, which a random tiny model cannot show."""
    from django.core.management import call_command

    from catalog.models import Product, ProductImage
    from indexing.services import index_catalog

    def build(limit: int = 30) -> list[Product]:
        settings.SEARCH_MODEL = DEFAULT_MODEL
        call_command("load_demo_catalog", limit=limit, verbosity=0)
        products = list(Product.objects.order_by("sku"))
        index_catalog([p.pk for p in products], list(ProductImage.objects.values_list("pk", flat=True)))
        return products

    return build
