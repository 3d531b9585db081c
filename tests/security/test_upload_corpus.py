"""Every file of the hostile/awkward corpus, on every way a photo gets in: the gate itself,
the shopper page, the admin's product form, the CSV import and the partner API.

A refused file gets its 4xx and a reason a person can act on, and leaves the catalog
(rows and files under MEDIA_ROOT) exactly as it was. An accepted file is usable: the
embedding path decodes it to upright RGB, and what is stored is what was hashed.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import NoReverseMatch, reverse

from catalog.importing import CSV_COLUMNS, import_catalog_csv
from catalog.models import Product, ProductImage
from catalog.uploads import UploadError, check_image_upload
from tests.factories import ProductFactory

from .conftest import TEST_MAX_IMAGE_PIXELS, TEST_MAX_UPLOAD_BYTES, catalog_snapshot, media_files
from .corpus import Sample, build_corpus

CORPUS = build_corpus(TEST_MAX_UPLOAD_BYTES, TEST_MAX_IMAGE_PIXELS)
IDS = [sample.name for sample in CORPUS]
CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
}

pytestmark = pytest.mark.usefixtures("upload_limits")


def as_upload(sample: Sample) -> SimpleUploadedFile:
    extension = sample.filename.rsplit(".", 1)[-1].lower()
    return SimpleUploadedFile(sample.filename, sample.data, content_type=CONTENT_TYPES.get(extension, "image/jpeg"))


def text_of(response) -> str:
    return html.unescape(response.content.decode())


def assert_stored_is_the_photo(original: bytes, stored: bytes) -> None:
    """What is kept decodes whole, to the same pixels as the upload's (first) picture."""
    from PIL import Image, ImageChops

    with Image.open(io.BytesIO(original)) as full, Image.open(io.BytesIO(stored)) as kept:
        kept.load()
        assert kept.size == full.size
        assert kept.mode == full.mode
        if full.mode not in ("P", "PA"):
            assert ImageChops.difference(kept.convert("RGBA"), full.convert("RGBA")).getbbox() is None


def test_corpus_is_big_and_varied():
    assert len(CORPUS) >= 25
    assert len(set(IDS)) == len(IDS)
    assert {s.status for s in CORPUS} == {200, 400, 413, 415}


@pytest.mark.parametrize("sample", CORPUS, ids=IDS)
def test_gate_gives_each_file_its_verdict(sample: Sample):
    if sample.accepted:
        checked = check_image_upload(sample.data)
        assert checked.format == sample.format
        if sample.size:
            assert (checked.width, checked.height) == sample.size
        assert checked.sha256 == hashlib.sha256(checked.data).hexdigest()
        again = check_image_upload(checked.data)  # what is stored passes the gate again unchanged
        assert again.data == checked.data
        assert_stored_is_the_photo(sample.data, checked.data)
    else:
        with pytest.raises(UploadError) as refused:
            check_image_upload(sample.data)
        assert (refused.value.status, refused.value.code) == (sample.status, sample.code)
        assert sample.reason.lower() in refused.value.message.lower()


@pytest.mark.parametrize("sample", [s for s in CORPUS if s.accepted], ids=[s.name for s in CORPUS if s.accepted])
def test_accepted_files_decode_upright_rgb_for_the_encoder(sample: Sample):
    from ml.preprocess import load_image

    image = load_image(check_image_upload(sample.data).data)
    assert image.mode == "RGB"
    if sample.name == "jpeg-exif-rotated":
        assert image.size == (120, 160)  # EXIF orientation 6 honoured: portrait


def test_pillow_bomb_limit_follows_the_setting(settings):
    from PIL import Image

    settings.MAX_IMAGE_PIXELS = 1234567
    with pytest.raises(UploadError):
        check_image_upload(b"")
    assert Image.MAX_IMAGE_PIXELS == 1234567


@pytest.mark.django_db
@pytest.mark.parametrize("sample", CORPUS, ids=IDS)
def test_shopper_page_upload(client, sample: Sample):
    before = catalog_snapshot()
    response = client.post("/", {"image": as_upload(sample)})
    assert response.status_code < 500
    if sample.accepted:
        assert response.status_code == 302
        assert "image_ref=" in response["Location"]
        ref = response["Location"].split("image_ref=")[1].split("&")[0]
        photo = client.get(f"/query-photo/{ref}/")
        assert photo.status_code == 200
        assert photo["Content-Type"].startswith("image/")
    else:
        assert response.status_code == sample.status, text_of(response)[-600:]
        assert 'role="alert"' in response.content.decode()
        assert sample.reason.lower() in text_of(response).lower()
    assert catalog_snapshot() == before


def _product_form(product: Product, upload: SimpleUploadedFile) -> dict:
    return {
        "sku": product.sku,
        "title": product.title,
        "description": product.description,
        "category": product.category_id,
        "metal": product.metal,
        "metal_text": "",
        "gemstone": product.gemstone,
        "gemstone_text": "",
        "price": str(product.price),
        "currency": product.currency,
        "stock": product.stock,
        "is_active": "on",
        "images-TOTAL_FORMS": 1,
        "images-INITIAL_FORMS": 0,
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
        "images-0-image": upload,
        "images-0-position": 0,
        "images-0-alt_text": "",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("sample", CORPUS, ids=IDS)
def test_admin_product_form_upload(admin_client, sample: Sample):
    product = ProductFactory()
    before = catalog_snapshot()
    response = admin_client.post(
        f"/admin/catalog/product/{product.pk}/change/", _product_form(product, as_upload(sample))
    )
    assert response.status_code < 500
    if sample.accepted:
        assert response.status_code == 302, text_of(response)[-2000:]
        image = ProductImage.objects.get(product=product)
        assert image.format == sample.format
        stored = Path(image.image.path)
        extension = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "HEIF": "heic"}[sample.format]
        assert stored.name == f"{image.content_hash}.{extension}"
        assert (
            hashlib.sha256(stored.read_bytes()).hexdigest() == image.content_hash
        )  # what is stored is what was checked
        assert_stored_is_the_photo(sample.data, stored.read_bytes())
        checked = check_image_upload(sample.data)
        assert (image.width, image.height) == (checked.width, checked.height)
        assert sample.filename not in str(stored)
    else:
        assert response.status_code == 200  # the form again, with the reason next to the photo
        assert "errorlist" in response.content.decode()
        assert sample.reason.lower() in text_of(response).lower()
        assert catalog_snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("sample", CORPUS, ids=IDS)
def test_csv_import_row(tmp_path, sample: Sample):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / sample.filename).write_bytes(sample.data)
    good = tmp_path / "photos" / "good.jpg"
    from tests.conftest import make_photo

    good.write_bytes(make_photo(7))
    csv_path = tmp_path / "catalog.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerow(["CORPUS-1", "A ring", "", "Ring", "gold", "", "diamond", "1000", sample.filename])
        writer.writerow(["GOOD-1", "A good ring", "", "Ring", "gold", "", "diamond", "1000", "good.jpg"])
    before = catalog_snapshot()
    summary = import_catalog_csv(csv_path, photos)
    assert Product.objects.filter(sku="GOOD-1").exists()  # a bad row never stops the others
    if sample.accepted:
        assert summary.created == 2
        assert not summary.failed
        image = ProductImage.objects.get(product__sku="CORPUS-1")
        assert image.format == sample.format
        assert hashlib.sha256(Path(image.image.path).read_bytes()).hexdigest() == image.content_hash
        assert_stored_is_the_photo(sample.data, Path(image.image.path).read_bytes())
    else:
        assert summary.created == 1
        [(line, sku, reason)] = summary.failed
        assert (line, sku) == (2, "CORPUS-1")
        assert sample.filename in reason
        assert sample.reason.lower() in reason.lower()
        assert not Product.objects.filter(sku="CORPUS-1").exists()
        after = catalog_snapshot()
        assert after["images"] == before["images"] + 1
        assert len(after["media"] - before["media"]) == 1
        assert media_files() == before["media"] | {
            str(Path(ProductImage.objects.get(product__sku="GOOD-1").image.name))
        }


def _api_search_url() -> str | None:
    try:
        return reverse("api:v1:search")
    except NoReverseMatch:
        pass
    from django.test import Client

    response = Client().post("/api/v1/search/")
    return None if response.status_code == 404 else "/api/v1/search/"


@pytest.fixture
def api_client(db):
    from django.test import Client

    from partners.models import PartnerAPIKey

    _, key = PartnerAPIKey.objects.create_key(name="corpus", scopes=["search"])
    return Client(HTTP_AUTHORIZATION=f"Api-Key {key}")


@pytest.mark.django_db
@pytest.mark.parametrize("sample", CORPUS, ids=IDS)
def test_api_search_upload(api_client, sample: Sample):
    url = _api_search_url()
    if url is None:
        pytest.skip("the partner API has no /api/v1/search/ endpoint yet")
    from indexing.engine import active_version

    active_version()  # the tiny test model serves (an empty catalog): accepted files get 200
    before = catalog_snapshot()
    response = api_client.post(url, {"image": as_upload(sample)})
    assert response.status_code < 500, response.content[:500]
    if sample.accepted:
        assert response.status_code == 200, response.content[:500]
    else:
        body = response.json()
        assert response.status_code == sample.status, body
        assert body["error"]["code"] == sample.code
        assert sample.reason.lower() in body["error"]["message"].lower()
    assert catalog_snapshot() == before


@pytest.mark.django_db
def test_query_photo_the_encoder_cannot_read_is_a_400_not_a_500(client, redis_client, version):
    """A kept photo that no longer decodes (an earlier release's gate stored only a prefix of
    some JPEGs; a store written by hand): the page says so, it never 500s."""
    from django_redis import get_redis_connection

    from search.photos import QUERY_CACHE, _photo_key
    from tests.conftest import make_photo

    ref = "ab" * 32
    get_redis_connection(QUERY_CACHE).set(_photo_key(ref), make_photo(1)[:81], ex=60)
    response = client.get("/", {"image_ref": ref})
    assert response.status_code == 400
    assert "could not read your photo" in text_of(response)
