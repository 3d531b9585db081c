"""Merchants working at the same time never get a 500 and never silently lose work: two
admin sessions on one product, the admin against an import, deletes against the import and
the indexer, deadlocks. Real PostgreSQL, real threads, each with its own connection."""

from __future__ import annotations

import csv
import logging
import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.test import Client

from catalog.db import run_in_transaction
from catalog.importing import CSV_COLUMNS, import_catalog_csv
from catalog.models import Product, ProductImage
from catalog.services import add_product_image
from catalog.uploads import check_image_upload
from tests.conftest import make_photo
from tests.factories import CategoryFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*jobs: Callable[[], object], timeout: float = 60) -> list[object]:
    """Run jobs in threads started at the same moment; their results (or exceptions)."""
    results: list[object] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def runner(index: int, job: Callable[[], object]) -> None:
        try:
            start.wait()
            results[index] = job()
        except Exception as exc:  # reported to the test, never swallowed
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a job hung"
    return results


@pytest.fixture
def admin_session():
    user = get_user_model().objects.create_superuser("boss", "boss@example.com", "pw")

    def make() -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


def media_files() -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def change_form(client: Client, product: Product, *, with_version: bool = True, **edits) -> dict:
    """What the admin's change page would post back: its own fields, hidden version included."""
    page = client.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    version = re.search(r'name="loaded_version" value="([^"]+)"', page)
    assert version, "the change form carries the version it was opened at"
    images = list(product.images.all())
    form = {
        "sku": product.sku,
        "title": product.title,
        "description": product.description,
        "category": product.category_id,
        "metal": product.metal,
        "metal_text": product.metal_text,
        "gemstone": product.gemstone,
        "gemstone_text": product.gemstone_text,
        "price": str(product.price),
        "currency": product.currency,
        "stock": product.stock,
        "is_active": "on",
        "images-TOTAL_FORMS": len(images) + 1,
        "images-INITIAL_FORMS": len(images),
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
        **{f"images-{i}-id": image.pk for i, image in enumerate(images)},
        **{f"images-{i}-product": product.pk for i, _ in enumerate(images)},
        **{f"images-{i}-position": image.position for i, image in enumerate(images)},
        **{f"images-{i}-alt_text": image.alt_text for i, image in enumerate(images)},
        f"images-{len(images)}-position": len(images),
        f"images-{len(images)}-alt_text": "",
        **edits,
    }
    if with_version:
        form["loaded_version"] = version[1]
    return form


def post(client: Client, product: Product, form: dict, photo: bytes | None = None):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = dict(form)
    if photo is not None:
        index = data["images-INITIAL_FORMS"]
        data[f"images-{index}-image"] = SimpleUploadedFile("ring.jpg", photo, content_type="image/jpeg")
    return client.post(f"/admin/catalog/product/{product.pk}/change/", data)


def test_second_saver_of_a_stale_form_gets_an_error_not_a_silent_overwrite(admin_session):
    product = ProductFactory(title="Original title")
    alice, bob = admin_session(), admin_session()
    alice_form = change_form(alice, product, title="Alice's title")
    bob_form = change_form(bob, product, title="Bob's title")
    first, second = run_together(lambda: post(alice, product, alice_form), lambda: post(bob, product, bob_form))
    statuses = sorted([first.status_code, second.status_code])
    assert statuses == [200, 302]
    winner, loser = (first, second) if first.status_code == 302 else (second, first)
    page = loser.content.decode()
    assert "Someone else saved this product" in page
    product.refresh_from_db()
    winning_title = "Alice's title" if winner is first else "Bob's title"
    losing_title = "Bob's title" if winner is first else "Alice's title"
    assert product.title == winning_title
    assert winning_title.replace("'", "&#x27;") in page  # the loser is told what the other saved
    # Having seen the warning, the loser saves again on purpose: that overwrites.
    refreshed = re.search(r'name="loaded_version" value="([^"]+)"', page)[1]
    loser_client = bob if winner is first else alice
    again = post(loser_client, product, {**(bob_form if winner is first else alice_form), "loaded_version": refreshed})
    assert again.status_code == 302
    product.refresh_from_db()
    assert product.title == losing_title


def test_two_sessions_adding_the_same_photo_store_it_once_without_a_500(admin_session):
    product = ProductFactory(title="A ring")
    alice, bob = admin_session(), admin_session()
    photo = make_photo(42)
    # An older form without the version field: only the photo check stands between them.
    alice_form = change_form(alice, product, with_version=False, title="A ring (Alice)")
    bob_form = change_form(bob, product, with_version=False, title="A ring (Bob)")
    first, second = run_together(
        lambda: post(alice, product, alice_form, photo), lambda: post(bob, product, bob_form, photo)
    )
    assert sorted([first.status_code, second.status_code]) == [200, 302]
    loser = first if first.status_code == 200 else second
    assert "already attached to the product" in loser.content.decode()
    assert ProductImage.objects.filter(product=product).count() == 1
    assert media_files() == {ProductImage.objects.get(product=product).image.name}


def test_two_sessions_with_current_forms_adding_the_same_photo(admin_session):
    product = ProductFactory()
    alice, bob = admin_session(), admin_session()
    photo = make_photo(43)
    forms = change_form(alice, product), change_form(bob, product)
    results = run_together(lambda: post(alice, product, forms[0], photo), lambda: post(bob, product, forms[1], photo))
    assert sorted(r.status_code for r in results) == [200, 302]
    assert ProductImage.objects.filter(product=product).count() == 1


def test_the_same_photo_added_twice_at_once_by_the_service_is_one_row():
    product = ProductFactory()
    checked = check_image_upload(make_photo(7))

    def add():
        with transaction.atomic():
            image, created = add_product_image(product, checked)
            time.sleep(0.3)  # hold the row uncommitted while the other one tries
            return image.pk, created

    results = run_together(add, add)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({pk for pk, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, True]
    assert ProductImage.objects.count() == 1
    assert len(media_files()) == 1


def _catalog_csv(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = folder / "catalog.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for sku, title, photo in rows:
            writer.writerow([sku, title, "", "Ring", "gold", "", "diamond", "100", photo])
    return path


def test_admin_save_racing_an_import_never_overwrites_the_import_silently(admin_session, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "p.jpg").write_bytes(make_photo(1))
    product = ProductFactory(sku="RACE-1", title="Before", category=CategoryFactory(name="Ring", slug="ring"))
    client = admin_session()
    form = change_form(client, product, title="Admin's title")
    csv_path = _catalog_csv(tmp_path, [("RACE-1", "Import's title", "p.jpg")])
    response, summary = run_together(lambda: post(client, product, form), lambda: import_catalog_csv(csv_path, photos))
    assert not isinstance(response, Exception)
    assert not isinstance(summary, Exception), summary
    assert response.status_code in (200, 302)
    assert summary.failed == []
    product.refresh_from_db()
    # Either the admin saved first and the import updated after it, or the import saved
    # first and the admin's stale form was refused: the import's title stands.
    assert product.title == "Import's title"
    if response.status_code == 200:
        assert "Someone else saved this product" in response.content.decode()


def test_delete_selected_while_an_import_writes_the_same_products(admin_session, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(6):
        (photos / f"p{seed}.jpg").write_bytes(make_photo(seed))
    category = CategoryFactory(name="Ring", slug="ring")
    skus = [f"DEL-{i}" for i in range(6)]
    rows = [(sku, f"Ring {sku}", f"p{i}.jpg;p{(i + 1) % 6}.jpg") for i, sku in enumerate(skus)]
    csv_path = _catalog_csv(tmp_path, rows * 3)
    client = admin_session()
    for round_ in range(3):
        products = [ProductFactory(sku=sku, category=category, photos=[i, i + 10]) for i, sku in enumerate(skus)]
        ids = [p.pk for p in products]

        def delete(ids=ids):
            return client.post(
                "/admin/catalog/product/",
                {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
            )

        response, summary = run_together(delete, lambda: import_catalog_csv(csv_path, photos))
        assert not isinstance(response, Exception), response
        assert response.status_code == 302, round_
        assert not isinstance(summary, Exception), summary
        assert summary.failed == [], summary.failed
        # Whatever order things happened in, the catalog is whole: every row has its file,
        # every file a row, no product half deleted.
        names = set(ProductImage.objects.values_list("image", flat=True))
        assert names == media_files()
        for product in Product.objects.filter(sku__in=skus):
            assert product.images.count() == 2
        Product.objects.all().delete()
        assert media_files() == set()


def test_delete_while_the_indexer_embeds_the_same_photos(admin_session, version):
    from indexing.services import index_catalog

    client = admin_session()
    outcomes: list[str] = []
    for round_ in range(4):
        product = ProductFactory(photos=[round_, round_ + 20])
        image_ids = list(product.images.values_list("pk", flat=True))

        def delete(pk=product.pk):
            return client.post(
                "/admin/catalog/product/", {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
            )

        response, indexed = run_together(delete, lambda ids=image_ids, pk=product.pk: index_catalog([pk], ids))
        assert not isinstance(response, Exception), response
        assert response.status_code == 302, round_
        assert not Product.objects.filter(pk=product.pk).exists()
        assert not ProductImage.objects.filter(pk__in=image_ids).exists()
        assert media_files() == set()
        # The indexer either finished first (the delete waited for it) or found the rows gone.
        outcomes.append(type(indexed).__name__)
    print("indexer outcomes:", outcomes)


def test_a_deadlock_is_retried_and_both_transactions_complete(caplog):
    first, second = ProductFactory(stock=1), ProductFactory(stock=1)
    locked_one = threading.Barrier(2)
    attempts: list[str] = []

    def worker(a: Product, b: Product, name: str) -> Callable[[], str]:
        def work() -> str:
            attempts.append(name)
            Product.objects.select_for_update().get(pk=a.pk)
            if attempts.count(name) == 1:  # the first attempt of each: both hold one row
                locked_one.wait(timeout=10)
            Product.objects.filter(pk=b.pk).update(stock=b.stock + 1)
            return name

        return lambda: run_in_transaction(work, what=f"test {name}")

    assert not connection.in_atomic_block
    with caplog.at_level(logging.WARNING, logger="catalog.db"):
        results = run_together(worker(first, second, "one"), worker(second, first, "two"))
    assert sorted(results) == ["one", "two"], results
    assert len(attempts) == 3  # one of them was chosen as the deadlock victim and ran again
    assert "deadlock detected, retrying" in caplog.text
    assert {p.stock for p in Product.objects.filter(pk__in=[first.pk, second.pk])} == {2}


def test_delete_waits_for_an_import_row_that_is_adding_a_photo(admin_session):
    """The probe's foreign-key 500: an import row adds a photo to a product while the admin
    deletes it. The delete must wait for the row and take its photo along."""
    from catalog.services import ProductData, upsert_product

    category = CategoryFactory(name="Ring", slug="ring")
    product = ProductFactory(sku="SLOW-1", category=category, photos=[1])
    client = admin_session()
    writing = threading.Event()

    def import_row():
        with transaction.atomic():  # what import_row does, with a slow photo in the middle
            data = ProductData("SLOW-1", product.title, "", "Ring", "gold", "diamond", Decimal("1000.00"))
            upserted, _ = upsert_product(data)
            add_product_image(upserted, check_image_upload(make_photo(2)))
            writing.set()
            time.sleep(0.5)
        return "committed"

    def delete():
        assert writing.wait(10)
        return client.post(
            "/admin/catalog/product/", {"action": "delete_selected", "_selected_action": [product.pk], "post": "yes"}
        )

    imported, response = run_together(import_row, delete)
    assert imported == "committed"
    assert not isinstance(response, Exception), response
    assert response.status_code == 302
    assert not Product.objects.filter(sku="SLOW-1").exists()
    assert ProductImage.objects.count() == 0
    assert media_files() == set()
