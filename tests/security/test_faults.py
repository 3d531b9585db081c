"""Faults on real parts: PostgreSQL restarting under a running gunicorn, model weights
that are missing or corrupt, a broken photo in an embedding batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from tests.conftest import ROOT, wait_until

from .live import start_stack

SEARCHES = [
    "/?text=rose+gold+ring",
    "/?text=white+gold&category=ring",
    "/?text=silver+pendant&in_stock=on",
    "/?text=diamond&price_max=3000",
    "/healthz",
    "/products/LIVE-0001/",
]


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("faults"))
    try:
        stack.seed(8)
        yield stack
    finally:
        stack.close()


@pytest.mark.slow
def test_postgres_restart_during_searches_is_503_with_retry_after_then_recovers_without_app_restart(live_stack):
    server = live_stack.start_gunicorn(threads=4)
    pid = server.process.pid
    assert server.get("/?text=gold+ring")[0] == 200

    statuses: Counter = Counter()
    errors: list[str] = []
    stop = threading.Event()

    def shopper(offset: int) -> None:  # searches without pause through the whole restart
        i = offset
        while not stop.is_set():
            path = SEARCHES[i % len(SEARCHES)]
            i += 1
            try:
                status, headers, _ = server.get(path, timeout=20)
            except OSError as exc:  # a reset connection would be a crash, not an answer
                errors.append(f"{path}: {exc}")
                continue
            statuses[status] += 1
            if status == 503 and "Retry-After" not in headers:
                errors.append(f"{path}: 503 without Retry-After")

    threads = [threading.Thread(target=shopper, args=(n,), daemon=True) for n in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    live_stack.postgres.stop()
    try:
        # During the outage: every page answers 503 with Retry-After, /healthz says why.
        for path in SEARCHES:
            status, headers, body = server.get(path)
            assert status == 503, (path, status, body[:300])
            assert int(headers["Retry-After"]) > 0, (path, status, body[:300])
        status, headers, body = server.get("/healthz")
        health = json.loads(body)
        assert health["database"].startswith("error: OperationalError")
        assert "Retry-After" in headers
        time.sleep(1.0)
    finally:
        live_stack.postgres.start()
    # Back without restarting the app: the same gunicorn answers 200 within seconds.
    assert wait_until(lambda: server.get("/?text=rose+gold+ring")[0] == 200, 20)
    time.sleep(1.0)
    stop.set()
    for thread in threads:
        thread.join(30)
    assert server.process.pid == pid
    assert server.process.poll() is None
    assert server.get("/healthz")[0] == 200
    assert not errors, errors[:5]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[503] > 0
    assert statuses[200] > 0
    log = server.log.read_text()
    assert "database unavailable" in log
    assert "Internal Server Error" not in log


# --- model weights --------------------------------------------------------------------------


def _check(env_extra: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "shop_search.settings.test", **env_extra}
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_corrupt_fusion_weights_fail_manage_py_check_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(os.urandom(4096))
    result = _check({"SEARCH_FUSION_WEIGHTS": str(corrupt)})
    assert result.returncode != 0
    assert "shop_search.E002" in result.stderr
    assert str(corrupt) in result.stderr


def test_truncated_checkpoint_fails_manage_py_check(tmp_path):
    import torch

    good = tmp_path / "fusion.pt"
    torch.save({"state_dict": {"w": torch.zeros(64, 64)}}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    result = _check({"SEARCH_FUSION_WEIGHTS": str(truncated)})
    assert result.returncode != 0
    assert str(truncated) in result.stderr
    assert _check({"SEARCH_FUSION_WEIGHTS": str(good)}).returncode == 0  # a readable file passes the cheap check


def test_missing_weights_fail_manage_py_check_naming_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "fusion.pt"
    result = _check({"SEARCH_FUSION_WEIGHTS": str(missing)})
    assert result.returncode != 0
    assert "shop_search.E001" in result.stderr
    assert str(missing) in result.stderr


@pytest.mark.django_db
def test_model_that_cannot_load_makes_search_503_not_500(client, monkeypatch, redis_client):
    from indexing.engine import active_version
    from ml.errors import ModelLoadError
    from search import query
    from tests.factories import ProductFactory

    active_version()
    # Words the catalogue has: the query needs the model (an unknown word is answered
    # "no pieces match" by the full-text side without it).
    ProductFactory(title="Gold ring")

    def broken(version):
        raise ModelLoadError("fusion checkpoint /srv/weights/fusion.pt is corrupt: bad zip")

    monkeypatch.setattr(query, "model_for_version", broken)
    response = client.get("/", {"text": "gold ring"})
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert "unavailable" in response.content.decode()


# --- one broken photo in a batch -------------------------------------------------------------


@pytest.mark.django_db
def test_a_broken_photo_does_not_fail_its_batch_mates(settings, redis_client):
    from pathlib import Path

    from catalog.models import ProductImage
    from indexing.engine import active_version
    from indexing.models import ImageEmbedding, ProductEmbedding
    from indexing.services import index_catalog
    from tests.factories import ProductFactory

    from .corpus import _png_header_only

    settings.EMBED_IMAGE_BATCH_SIZE = 8  # all in one batch
    version = active_version()
    products = [ProductFactory(photos=[300 + i]) for i in range(6)]
    images = list(ProductImage.objects.order_by("pk"))
    garbage, missing, bomb = images[1], images[3], images[4]
    Path(garbage.image.path).write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg any more" * 10)
    Path(missing.image.path).unlink()
    Path(bomb.image.path).write_bytes(_png_header_only(60_000, 60_000))
    report = index_catalog([p.pk for p in products], [i.pk for i in images])

    embedded = set(ImageEmbedding.objects.filter(model_version=version).values_list("image_id", flat=True))
    assert embedded == {images[0].pk, images[2].pk, images[5].pk}
    assert set(report.failures) == {garbage.pk, missing.pk, bomb.pk}
    state = {
        pk: (error, dirty)
        for pk, error, dirty in ProductImage.objects.values_list("pk", "embedding_error", "embedding_dirty")
    }
    for image in (garbage, missing, bomb):
        assert state[image.pk][0]
        assert not state[image.pk][1]
    assert "pixels" in state[bomb.pk][0]
    for image in (images[0], images[2], images[5]):
        assert state[image.pk] == ("", False)
    # Every product still has its fused vector (from text, and photos that did decode).
    assert ProductEmbedding.objects.filter(model_version=version).count() == 6
