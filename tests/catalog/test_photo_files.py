"""Photo files on disk follow their rows: stored once per content, deleted after commit when
the last row naming them goes, never on rollback, not served once no row names them, and
`manage.py media_gc` sweeps what earlier releases left behind."""

from __future__ import annotations

import os
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection, transaction

from catalog.models import Product, ProductImage
from tests.conftest import make_photo
from tests.factories import ProductFactory, add_product_image_bytes


def media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def names(product: Product) -> set[str]:
    return set(product.images.values_list("image", flat=True))


def make_orphan(seed: int, age_seconds: float = 7200) -> str:
    """A file as an earlier release left it: written, its row deleted behind the model's back."""
    product = ProductFactory(photos=[seed])
    name = product.images.get().image.name
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM catalog_productimage WHERE product_id = %s", [product.pk])
    path = Path(settings.MEDIA_ROOT) / name
    old = time.time() - age_seconds
    os.utime(path, (old, old))
    return name


@pytest.mark.django_db(transaction=True)
def test_deleting_a_product_deletes_its_photo_files_after_commit():
    product = ProductFactory(photos=[1, 2])
    keep = ProductFactory(photos=[3])
    stored = names(product)
    assert stored <= media_files()
    with transaction.atomic():
        product.delete()
        assert stored <= media_files()  # not before commit
    assert media_files() == names(keep)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_delete_keeps_the_files():
    product = ProductFactory(photos=[1])
    stored = names(product)
    pk = product.pk

    def delete_then_fail():
        with transaction.atomic():
            product.delete()
            raise RuntimeError("the rest of the work failed")

    with pytest.raises(RuntimeError):
        delete_then_fail()
    assert Product.objects.filter(pk=pk).exists()
    assert stored <= media_files()


@pytest.mark.django_db(transaction=True)
def test_one_file_per_content_shared_by_rows_and_kept_until_the_last_row_goes():
    first = ProductFactory(photos=[5])
    second = ProductFactory(photos=[5])
    assert names(first) == names(second)
    assert len(media_files()) == 1
    first.delete()
    assert media_files() == names(second)  # the other product still shows it
    second.delete()
    assert media_files() == set()


@pytest.mark.django_db(transaction=True)
def test_removing_a_photo_in_the_import_sync_deletes_its_file():
    from catalog.services import sync_product_images
    from catalog.uploads import check_image_upload

    product = ProductFactory(photos=[1, 2])
    sync_product_images(product, [check_image_upload(make_photo(2))])
    assert media_files() == names(product)
    assert len(media_files()) == 1


@pytest.mark.django_db(transaction=True)
def test_replacing_a_photo_in_the_admin_deletes_the_old_file(admin_client):
    product = ProductFactory(photos=[1])
    image = product.images.get()
    old = image.image.name
    form = {
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
        "images-INITIAL_FORMS": 1,
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
        "images-0-id": image.pk,
        "images-0-product": product.pk,
        "images-0-image": SimpleUploadedFile("new.jpg", make_photo(9), content_type="image/jpeg"),
        "images-0-position": 0,
        "images-0-alt_text": "",
    }
    response = admin_client.post(f"/admin/catalog/product/{product.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[-1500:]
    image.refresh_from_db()
    assert image.image.name != old
    assert media_files() == {image.image.name}


@pytest.mark.django_db(transaction=True)
def test_admin_delete_selected_removes_rows_and_files(admin_client):
    doomed = [ProductFactory(photos=[seed]) for seed in (1, 2)]
    keep = ProductFactory(photos=[3])
    response = admin_client.post(
        "/admin/catalog/product/",
        {"action": "delete_selected", "_selected_action": [p.pk for p in doomed], "post": "yes"},
    )
    assert response.status_code == 302
    assert list(Product.objects.all()) == [keep]
    assert media_files() == names(keep)


@pytest.mark.django_db
def test_a_photo_no_row_names_is_not_served(client):
    product = ProductFactory(photos=[1])
    url = product.images.get().image.url
    assert client.get(url).status_code == 200
    orphan = make_orphan(2)
    assert (Path(settings.MEDIA_ROOT) / orphan).is_file()  # still on disk, as an earlier release left it
    assert client.get(f"/media/{orphan}").status_code == 404
    with connection.cursor() as cursor:  # the product goes; its file is still there until commit + gc
        cursor.execute("DELETE FROM catalog_productimage WHERE product_id = %s", [product.pk])
    assert client.get(url).status_code == 404


@pytest.mark.django_db
def test_media_gc_dry_run_reports_and_deletes_nothing_then_removes_only_orphans():
    keep = ProductFactory(photos=[1, 2])
    orphans = {make_orphan(3), make_orphan(4)}
    young = make_orphan(5, age_seconds=10)
    stranger = Path(settings.MEDIA_ROOT) / "products" / "README.txt"
    stranger.write_text("not ours")
    before = media_files()

    out, err = StringIO(), StringIO()
    call_command("media_gc", "--dry-run", stdout=out, stderr=err, verbosity=0)
    assert media_files() == before
    report = out.getvalue()
    for name in orphans:
        assert f"orphan: {name}" in report
    assert young not in report
    assert "would delete 2 orphans" in report
    assert "1 too recent" in report
    assert "1 unknown names left alone" in report

    out = StringIO()
    call_command("media_gc", stdout=out, stderr=StringIO(), verbosity=0)
    assert "deleted 2 orphans" in out.getvalue()
    assert media_files() == names(keep) | {young, "products/README.txt"}
    for image in keep.images.all():  # the catalog's photos are untouched
        assert Path(image.image.path).is_file()


@pytest.mark.django_db
def test_media_gc_reports_rows_whose_file_is_missing_and_keeps_the_row():
    product = ProductFactory(photos=[1])
    image = product.images.get()
    Path(image.image.path).unlink()
    err, out = StringIO(), StringIO()
    call_command("media_gc", stdout=out, stderr=err, verbosity=0)
    assert f"photo row without its file (upload it again): {image.image.name}" in err.getvalue()
    assert "1 photo rows without a file" in out.getvalue()
    assert ProductImage.objects.filter(pk=image.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_failed_insert_leaves_no_file_behind():
    product = ProductFactory()
    with connection.cursor() as cursor:  # make every photo insert fail after its file is written
        cursor.execute("ALTER TABLE catalog_productimage ADD CONSTRAINT test_no_photos CHECK (position < 0) NOT VALID")
    try:
        with pytest.raises(Exception, match="test_no_photos"):
            add_product_image_bytes(product, make_photo(1))
        assert media_files() == set()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE catalog_productimage DROP CONSTRAINT test_no_photos")
