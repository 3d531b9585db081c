"""The shopper page under abuse: a per-address search limit exact under concurrency, query
photos in a bounded store on the query cache's own Redis, decodes bounded before the model."""

from __future__ import annotations

import io
import threading
import time
import uuid

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django_redis import get_redis_connection
from PIL import Image

from catalog.uploads import check_image_upload
from ml.preprocess import load_image
from search.photos import QUERY_CACHE, find_query_photo, keep_query_photo, rendition
from search.ratelimit import hit, shopper_search_key
from tests.conftest import make_photo

pytestmark = pytest.mark.django_db


def _noise_jpeg(seed: int, size: tuple[int, int] = (4000, 3000)) -> bytes:
    """A photo that compresses badly: ~7 MB at this size, like the probe's uploads."""
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=92)
    return out.getvalue()


@pytest.fixture
def limited(settings):
    settings.SHOPPER_SEARCH_RATE = "3/min"
    connection = get_redis_connection("default")
    keys = list(connection.scan_iter(shopper_search_key("*")))
    if keys:
        connection.delete(*keys)
    yield
    keys = list(connection.scan_iter(shopper_search_key("*")))
    if keys:
        connection.delete(*keys)


# --- the limit ---------------------------------------------------------------------------


def test_200_requests_from_40_threads_at_60_per_minute_let_exactly_60_through():
    key = f"test-ratelimit:{uuid.uuid4().hex}"
    allowed, barrier, lock = [], threading.Barrier(40), threading.Lock()

    def client() -> None:
        barrier.wait()
        for _ in range(5):
            decision = hit(key, 60, 60)
            with lock:
                allowed.append(decision)

    threads = [threading.Thread(target=client) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(allowed) == 200
    assert sum(decision.allowed for decision in allowed) == 60
    refused = [decision for decision in allowed if not decision.allowed]
    assert all(0 < decision.retry_after <= 60 for decision in refused)
    get_redis_connection("default").delete(key)


def test_the_window_slides_a_slot_frees_once_its_request_is_older_than_the_window():
    key = f"test-ratelimit:{uuid.uuid4().hex}"
    assert [hit(key, 2, 1).allowed for _ in range(3)] == [True, True, False]
    time.sleep(1.05)
    assert hit(key, 2, 1).allowed
    get_redis_connection("default").delete(key)


def test_shopper_searches_past_the_limit_get_a_friendly_429_page_per_address(client, limited):
    assert client.get("/").status_code == 200  # the bare page runs nothing and is not counted
    statuses = [client.get("/", {"text": f"ring {i}"}, REMOTE_ADDR="203.0.113.7").status_code for i in range(3)]
    assert 429 not in statuses
    refused = client.get("/", {"text": "ring 4"}, REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    page = refused.content.decode()
    assert 'role="alert"' in page
    assert "try again" in page
    assert "3 searches a minute" in page
    # an upload counts too, and is refused before its bytes are decoded
    upload = SimpleUploadedFile("ring.jpg", make_photo(1), content_type="image/jpeg")
    assert client.post("/", {"image": upload}, REMOTE_ADDR="203.0.113.7").status_code == 429
    assert client.get("/", {"text": "ring"}, REMOTE_ADDR="203.0.113.8").status_code != 429  # another shopper


def test_behind_trusted_proxies_the_limit_counts_the_address_the_proxy_saw(client, limited, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    statuses = [
        # the client makes up a new address each time; our proxy appends the one it saw
        client.get(
            "/", {"text": "ring"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}, 203.0.113.9"
        ).status_code
        for i in range(4)
    ]
    assert statuses[-1] == 429
    assert 429 not in statuses[:3]
    other = client.get("/", {"text": "ring"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.10")
    assert other.status_code != 429  # same proxy, another shopper


# --- the photo store ------------------------------------------------------------------------


@pytest.fixture
def query_store():
    connection = get_redis_connection(QUERY_CACHE)
    assert connection.connection_pool.connection_kwargs.get("db") != get_redis_connection(
        "default"
    ).connection_pool.connection_kwargs.get("db"), "the query cache shares the broker's database"
    connection.flushdb()
    yield connection
    connection.flushdb()


def _photo_bytes(connection) -> dict[bytes, int]:
    return {
        key: connection.strlen(key)
        for key in connection.scan_iter("shop-search-query:{photos}:*")
        if not key.endswith((b":index", b":sizes"))
    }


def test_large_uploads_are_kept_as_small_renditions_on_the_query_cache_not_the_broker(client, query_store):
    broker = get_redis_connection("default")
    upload = _noise_jpeg(0)
    assert len(upload) > 6_000_000
    broker_before = broker.info("memory")["used_memory"]
    response = client.post("/", {"image": SimpleUploadedFile("big.jpg", upload, content_type="image/jpeg")})
    assert response.status_code == 302
    ref = response["Location"].split("image_ref=")[1].split("&")[0]
    stored = _photo_bytes(query_store)
    assert list(stored) == [f"shop-search-query:{{photos}}:{ref}".encode()]
    assert next(iter(stored.values())) < 1_000_000  # a rendition, not the 7 MB upload
    kept = Image.open(io.BytesIO(client.get(f"/query-photo/{ref}/").content))
    assert kept.format == "JPEG"
    assert max(kept.size) == settings.QUERY_PHOTO_MAX_SIDE
    assert not list(broker.scan_iter(f"*{ref}*"))  # nothing of it in the broker's database
    # the search that follows reads the rendition
    assert client.get(response["Location"]).status_code in (200, 503)
    assert broker.info("memory")["used_memory"] - broker_before < 1_000_000


def test_the_store_stays_under_its_budget_by_dropping_the_oldest_photos(query_store, settings):
    sizes = []
    refs = []
    for seed in range(12):
        checked = check_image_upload(_noise_jpeg(seed, (1600, 1200)))
        refs.append(keep_query_photo(checked).ref)
        sizes.append(sum(_photo_bytes(query_store).values()))
        if seed == 3:  # four photos measure the budget: room for about five
            settings.QUERY_PHOTO_STORE_BYTES = int(sizes[-1] * 1.3)
    budget = settings.QUERY_PHOTO_STORE_BYTES
    assert all(total <= budget for total in sizes[4:])
    assert find_query_photo(refs[-1]) is not None  # the newest is always kept
    assert find_query_photo(refs[0]) is None  # the oldest made room
    assert 3 <= sum(find_query_photo(ref) is not None for ref in refs) <= 6


def test_a_query_photo_expires_with_its_time(query_store, settings):
    settings.QUERY_PHOTO_SECONDS = 1
    ref = keep_query_photo(check_image_upload(make_photo(3))).ref
    assert find_query_photo(ref) is not None
    time.sleep(2.1)
    assert find_query_photo(ref) is None
    assert query_store.ttl(b"shop-search-query:{photos}:index") <= 1


# --- bounded decodes ------------------------------------------------------------------------


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 180, 160)).save(out, "PNG", compress_level=9)
    return out.getvalue()


def test_a_50_megapixel_png_query_costs_under_0_3_s_of_cpu_on_the_page_and_the_api(client, query_store):
    data = _png(8660, 5774)  # 50 MP in 160 KB, the probe's file
    assert len(data) < 200_000
    started = time.process_time()
    response = client.post("/", {"image": SimpleUploadedFile("huge.png", data, content_type="image/png")})
    cpu = time.process_time() - started
    assert response.status_code == 400
    assert "megapixels" in response.content.decode()
    assert cpu < 0.3, f"{cpu:.2f} s of CPU"
    assert not _photo_bytes(query_store)


def test_a_jpeg_query_is_decoded_at_the_reduced_scale_the_model_reads():
    data = make_photo(2, size=(4000, 3000))
    assert load_image(data).size == (4000, 3000)
    assert load_image(data, draft=(260, 260)).size == (500, 375)  # 1/8 of the DCT: both sides still >= 260
    assert max(Image.open(io.BytesIO(rendition(check_image_upload(data)))).size) == settings.QUERY_PHOTO_MAX_SIDE


def test_a_png_with_transparency_is_kept_on_white_as_the_model_sees_it():
    image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))
    out = io.BytesIO()
    image.save(out, "PNG")
    kept = Image.open(io.BytesIO(rendition(check_image_upload(out.getvalue())))).convert("RGB")
    assert kept.getpixel((10, 10)) == (255, 255, 255)


def test_with_the_query_cache_down_an_upload_is_a_503_that_says_so(client, settings):
    from tests.security.live import free_port

    settings.CACHES = {
        **settings.CACHES,
        "query": {**settings.CACHES["query"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"},
    }
    upload = SimpleUploadedFile("ring.jpg", make_photo(5), content_type="image/jpeg")
    response = client.post("/", {"image": upload})
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "briefly unavailable" in response.content.decode()
    assert client.get("/", {"image_ref": "0" * 64}).status_code == 410  # nothing kept: "upload it again"
