"""Indexing in-process: what a task embeds, what it skips, how flags and failures end up,
how catalog saves become tasks, the sweep, and the reindex / index_status commands."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from catalog.models import Product, ProductImage
from catalog.services import mark_products_for_reembedding
from indexing import dispatch, services, tasks
from indexing.engine import load_search_model, model_for_version, register_version
from indexing.models import ImageEmbedding, ProductEmbedding
from indexing.services import index_catalog, index_status
from tests.conftest import make_photo
from tests.factories import CategoryFactory, ProductFactory, add_product_image_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def model_calls(version, monkeypatch):
    """How many photos / texts the active model encoded."""
    model = model_for_version(version)
    calls = {"image": 0, "text": 0}
    for method, key in (("image_features", "image"), ("text_features", "text")):
        original = getattr(model, method)

        def counted(items, *args, _original=original, _key=key, **kwargs):
            calls[_key] += len(items)
            return _original(items, *args, **kwargs)

        monkeypatch.setattr(model, method, counted)
    return calls


@pytest.fixture
def sent_tasks(monkeypatch):
    """Index tasks sent to the broker (not really sent)."""
    sent = []
    monkeypatch.setattr(
        dispatch, "publish_index_task", lambda product_ids, image_ids: sent.append((product_ids, image_ids))
    )
    dispatch.reset_broker_backoff()
    return sent


def index_everything():
    return index_catalog(
        Product.objects.values_list("pk", flat=True), ProductImage.objects.values_list("pk", flat=True)
    )


def product_vector(product, version) -> np.ndarray:
    return np.asarray(ProductEmbedding.objects.get(product=product, model_version=version).embedding)


def test_indexing_embeds_photos_and_products_and_clears_their_flags(version):
    product = ProductFactory(photos=[1, 2])
    report = index_everything()
    assert (report.images_embedded, report.products_embedded, report.failures) == (2, 1, {})
    assert ImageEmbedding.objects.filter(product=product, model_version=version).count() == 2
    assert ProductEmbedding.objects.filter(product=product, model_version=version).count() == 1
    assert not Product.objects.get(pk=product.pk).embedding_dirty
    assert not ProductImage.objects.filter(embedding_dirty=True).exists()
    assert index_status()["pending"] == 0


def test_text_edit_re_embeds_the_text_side_only(version, model_calls):
    product = ProductFactory(photos=[1, 2])
    index_everything()
    before = product_vector(product, version)
    photo_rows = dict(ImageEmbedding.objects.values_list("pk", "updated_at"))
    model_calls.update(image=0, text=0)

    product.title = "Rose gold ring with a pink sapphire"
    product.save()
    index_catalog(product_ids=[product.pk])

    assert model_calls == {"image": 0, "text": 1}
    assert dict(ImageEmbedding.objects.values_list("pk", "updated_at")) == photo_rows
    assert not np.allclose(product_vector(product, version), before)
    assert not Product.objects.get(pk=product.pk).embedding_dirty


def test_price_change_needs_no_new_embedding(version, model_calls):
    product = ProductFactory(photos=[1])
    index_everything()
    model_calls.update(image=0, text=0)
    product = Product.objects.get(pk=product.pk)
    product.price = 5
    product.save()
    assert not product.embedding_dirty
    report = index_catalog(product_ids=[product.pk])
    assert model_calls == {"image": 0, "text": 0}
    assert report.skipped == 1


def test_new_photo_embeds_the_image_side_only_and_refuses_the_product_vector(version, model_calls):
    product = ProductFactory(photos=[1])
    index_everything()
    before = product_vector(product, version)
    model_calls.update(image=0, text=0)

    image, _ = add_product_image_bytes(product, make_photo(2))
    index_catalog(image_ids=[image.pk])

    assert model_calls == {"image": 1, "text": 0}
    assert ImageEmbedding.objects.filter(product=product, model_version=version).count() == 2
    assert not np.allclose(product_vector(product, version), before)
    assert not ProductImage.objects.get(pk=image.pk).embedding_dirty


def test_deleting_a_photo_recomputes_the_product_vector_without_it(version):
    product = ProductFactory(photos=[1])
    index_everything()
    only_first = product_vector(product, version)
    second, _ = add_product_image_bytes(product, make_photo(2))
    index_catalog(image_ids=[second.pk])
    assert not np.allclose(product_vector(product, version), only_first)

    second.delete()
    assert Product.objects.get(pk=product.pk).embedding_dirty
    index_catalog(product_ids=[product.pk])
    assert np.allclose(product_vector(product, version), only_first, atol=1e-5)


def test_running_the_same_work_twice_leaves_one_row_per_item_and_version_and_costs_no_model_call(version, model_calls):
    ProductFactory(photos=[1, 2, 3])
    index_everything()
    model_calls.update(image=0, text=0)
    report = index_everything()
    assert model_calls == {"image": 0, "text": 0}
    assert report.skipped == 4
    assert report.images_embedded == 0
    assert ImageEmbedding.objects.count() == 3
    assert ProductEmbedding.objects.count() == 1

    mark_products_for_reembedding(Product.objects.values_list("pk", flat=True))
    index_everything()
    index_everything()
    assert ImageEmbedding.objects.count() == 3
    assert ProductEmbedding.objects.count() == 1


def test_photos_are_embedded_in_batches_of_the_configured_size(version, settings, monkeypatch):
    settings.EMBED_IMAGE_BATCH_SIZE = 2
    model = model_for_version(version)
    sizes = []
    original = model.image_features
    monkeypatch.setattr(model, "image_features", lambda items, **kw: sizes.append(len(items)) or original(items, **kw))
    ProductFactory(photos=[1, 2, 3, 4, 5])
    index_everything()
    assert sizes == [2, 2, 1]


def test_undecodable_photo_is_recorded_on_its_row_and_its_batch_mates_are_embedded(version, admin_client):
    product = ProductFactory(photos=[1, 2, 3])
    broken = product.images.order_by("pk")[1]
    with open(broken.image.path, "wb") as handle:
        handle.write(b"\xff\xd8\xff this is not a jpeg any more")

    report = index_everything()

    assert set(report.failures) == {broken.pk}
    broken.refresh_from_db()
    assert not broken.embedding_dirty
    assert "ImageDecodeError" in broken.embedding_error
    assert ImageEmbedding.objects.filter(product=product).count() == 2
    assert ProductEmbedding.objects.filter(product=product).count() == 1
    status = index_status()
    assert status["failed"] == 1
    assert status["pending"] == 0
    html = admin_client.get(f"/admin/catalog/product/{product.pk}/change/").content.decode()
    assert "failed (ImageDecodeError" in html
    # A failed photo is not retried by every later task of its product...
    assert index_catalog(product_ids=[product.pk]).failures == {}
    # ...until it is replaced or re-embedded on purpose.
    mark_products_for_reembedding([product.pk])
    assert set(index_everything().failures) == {broken.pk}


def test_missing_photo_file_is_a_permanent_failure_with_its_reason(version):
    product = ProductFactory(photos=[1])
    image = product.images.get()
    image.image.storage.delete(image.image.name)
    report = index_everything()
    assert "FileNotFoundError" in report.failures[image.pk]
    assert ProductEmbedding.objects.filter(product=product).count() == 1  # text still makes it findable


def test_a_photo_that_breaks_the_model_fails_alone(version, monkeypatch, settings):
    settings.EMBED_IMAGE_BATCH_SIZE = 4
    ProductFactory(photos=[1, 2, 3])
    bad = ProductImage.objects.order_by("pk")[1]
    model = model_for_version(version)
    read_photo, image_features = services._read_photo, model.image_features

    def tiny_when_bad(image, side=None):
        photo = read_photo(image, side)
        return photo.resize((1, 1)) if image.pk == bad.pk else photo

    def breaks_on_tiny(items, **kwargs):
        if any(item.size == (1, 1) for item in items):
            raise RuntimeError("shape mismatch")
        return image_features(items, **kwargs)

    monkeypatch.setattr(services, "_read_photo", tiny_when_bad)
    monkeypatch.setattr(model, "image_features", breaks_on_tiny)

    report = index_everything()
    assert report.failures == {bad.pk: "RuntimeError: shape mismatch"}
    assert ImageEmbedding.objects.count() == 2


def test_a_photo_replaced_while_its_vector_was_computed_stays_marked_for_the_newer_task(version, monkeypatch):
    product = ProductFactory(photos=[1])
    image = product.images.get()
    original = services._read_photo

    def replaced_meanwhile(photo, side=None):
        ProductImage.objects.filter(pk=photo.pk).update(embedding_marked_at=timezone.now())
        return original(photo, side)

    monkeypatch.setattr(services, "_read_photo", replaced_meanwhile)
    report = index_catalog(image_ids=[image.pk])

    assert ImageEmbedding.objects.filter(image=image).count() == 0  # the stale vector is not written
    assert ProductImage.objects.get(pk=image.pk).embedding_dirty
    assert report.images_embedded == 0


def test_a_product_edited_while_its_text_was_encoded_stays_marked(version, monkeypatch):
    product = ProductFactory(photos=[1])
    original = services.product_text_of

    def edited_meanwhile(item):
        Product.objects.filter(pk=item.pk).update(embedding_marked_at=timezone.now(), title="newer")
        return original(item)

    monkeypatch.setattr(services, "product_text_of", edited_meanwhile)
    index_catalog(product_ids=[product.pk])
    assert ProductEmbedding.objects.filter(product=product).count() == 0
    assert Product.objects.get(pk=product.pk).embedding_dirty


def test_edits_during_a_backfill_are_embedded_for_both_versions(version):
    new = register_version(
        load_search_model("tiny-test", {"fusion_weights": "random:7"}), weights={"fusion_weights": "random:7"}
    )
    product = ProductFactory(photos=[1, 2])
    index_catalog(product_ids=[product.pk])
    for each in (version, new):
        assert ImageEmbedding.objects.filter(product=product, model_version=each).count() == 2
        assert ProductEmbedding.objects.filter(product=product, model_version=each).count() == 1
    assert not np.allclose(product_vector(product, version), product_vector(product, new))


def test_backfill_leaves_the_flags_the_active_version_still_needs(version):
    product = ProductFactory(photos=[1])
    index_everything()
    new = register_version(
        load_search_model("tiny-test", {"fusion_weights": "random:7"}), weights={"fusion_weights": "random:7"}
    )
    product.title = "Edited while the new version is built"
    product.save()

    services.backfill_version(new, [product.pk], list(product.images.values_list("pk", flat=True)))

    assert ProductEmbedding.objects.filter(product=product, model_version=new).exists()
    assert Product.objects.get(pk=product.pk).embedding_dirty  # the active version still has the old text
    index_catalog(product_ids=[product.pk])
    assert not Product.objects.get(pk=product.pk).embedding_dirty


# --- saves -> tasks -------------------------------------------------------------------


def test_saving_a_product_and_its_photos_in_one_transaction_sends_one_task(
    version, sent_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        product = ProductFactory(photos=[1, 2, 3])
    assert sent_tasks == [([product.pk], sorted(product.images.values_list("pk", flat=True)))]


def test_nothing_is_sent_for_a_transaction_that_rolls_back(version, sent_tasks, django_capture_on_commit_callbacks):
    def import_row_that_fails() -> None:
        with transaction.atomic():
            ProductFactory(photos=[1])
            raise RuntimeError("import row failed")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError, match="import row failed"):
        import_row_that_fails()
    assert sent_tasks == []


def test_a_price_edit_sends_nothing(version, sent_tasks, django_capture_on_commit_callbacks):
    product = ProductFactory(photos=[1])
    Product.objects.filter(pk=product.pk).update(embedding_dirty=False)
    product.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        product.price = 12
        product.save()
    assert sent_tasks == []


@pytest.mark.django_db(transaction=True)
def test_bulk_import_sends_chunked_tasks_not_one_per_row(version, sent_tasks, settings, tmp_path):
    settings.EMBED_IMAGE_BATCH_SIZE = 4
    rows = ["sku,title,description,category,metal,metal_color,gemstone,price,images"]
    for i in range(10):
        (tmp_path / f"{i}.jpg").write_bytes(make_photo(i))
        rows.append(f"S{i},Ring {i},,Ring,gold,yellow,diamond,100,{i}.jpg")
    (tmp_path / "catalog.csv").write_text("\n".join(rows) + "\n")

    call_command("import_catalog", str(tmp_path / "catalog.csv"), "--images-root", str(tmp_path), verbosity=0)

    assert [len(images) for _, images in sent_tasks] == [4, 4, 2]
    assert sorted(pk for products, _ in sent_tasks for pk in products) == sorted(
        Product.objects.values_list("pk", flat=True)
    )
    assert sorted(pk for _, images in sent_tasks for pk in images) == sorted(
        ProductImage.objects.values_list("pk", flat=True)
    )


def test_chunks_keep_a_product_with_its_photos(version, settings):
    settings.EMBED_IMAGE_BATCH_SIZE = 2
    many = ProductFactory(photos=[1, 2, 3])
    one = ProductFactory(photos=[4])
    chunks = dispatch.index_chunks([many.pk, one.pk], ProductImage.objects.values_list("pk", flat=True))
    assert [(products, len(images)) for products, images in chunks] == [([many.pk], 3), ([one.pk], 1)]


def test_broker_down_neither_fails_nor_slows_saves(version, settings, django_capture_on_commit_callbacks, caplog):
    from shop_search.celery import app

    dispatch.reset_broker_backoff()
    previous = app.conf.broker_url
    settings.CELERY_BROKER_URL = app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens there
    app._pool, app.amqp._producer_pool = None, None
    try:
        started = time.monotonic()
        for seed in range(5):
            with django_capture_on_commit_callbacks(execute=True):
                ProductFactory(photos=[seed])
        elapsed = time.monotonic() - started
    finally:
        app.conf.broker_url = previous
        app._pool, app.amqp._producer_pool = None, None
        dispatch.reset_broker_backoff()
    assert Product.objects.count() == 5
    assert Product.objects.filter(embedding_dirty=True).count() == 5
    assert elapsed < 8, "only the first save waits for the broker; the rest are left to the sweep at once"
    assert "stay marked for the sweep" in caplog.text


# --- the sweep --------------------------------------------------------------------------


def test_sweep_re_enqueues_what_is_still_marked_after_the_grace_period(version, sent_tasks, monkeypatch, settings):
    settings.INDEX_SWEEP_GRACE_SECONDS = 60
    monkeypatch.setattr(tasks, "queued_tasks", lambda: 0)
    lost = ProductFactory(photos=[1])
    ProductFactory(photos=[2])  # just saved: its own task is on the way
    long_ago = timezone.now() - timedelta(minutes=5)
    Product.objects.filter(pk=lost.pk).update(embedding_marked_at=long_ago)
    lost.images.update(embedding_marked_at=long_ago)

    assert tasks.sweep_index_task() == 2
    assert sent_tasks == [([lost.pk], [lost.images.get().pk])]


def test_sweep_re_enqueues_rows_that_never_got_a_vector(version, sent_tasks, monkeypatch, settings):
    monkeypatch.setattr(tasks, "queued_tasks", lambda: 0)
    product = ProductFactory(photos=[1])
    long_ago = timezone.now() - timedelta(minutes=5)
    Product.objects.update(embedding_dirty=False, embedding_marked_at=long_ago)
    ProductImage.objects.update(embedding_dirty=False, embedding_marked_at=long_ago)
    tasks.sweep_index_task()
    assert sent_tasks == [([product.pk], [product.images.get().pk])]


def test_sweep_waits_while_tasks_are_queued(version, sent_tasks, monkeypatch):
    monkeypatch.setattr(tasks, "queued_tasks", lambda: 3)
    ProductFactory(photos=[1])
    Product.objects.update(embedding_marked_at=timezone.now() - timedelta(minutes=5))
    assert tasks.sweep_index_task() == 0
    assert sent_tasks == []


def test_sweep_enqueues_the_backfill_of_a_version_being_built(version, sent_tasks, monkeypatch):
    monkeypatch.setattr(tasks, "queued_tasks", lambda: 0)
    backfills = []
    monkeypatch.setattr(tasks.backfill_version_task, "apply_async", lambda args, **kw: backfills.append(args))
    product = ProductFactory(photos=[1])
    index_everything()
    Product.objects.update(embedding_marked_at=timezone.now() - timedelta(minutes=5))
    ProductImage.objects.update(embedding_marked_at=timezone.now() - timedelta(minutes=5))
    new = register_version(
        load_search_model("tiny-test", {"fusion_weights": "random:7"}), weights={"fusion_weights": "random:7"}
    )
    tasks.sweep_index_task()
    assert sent_tasks == []
    assert backfills == [[new.pk, [product.pk], [product.images.get().pk]]]


# --- commands ---------------------------------------------------------------------------


def test_reindex_sync_re_embeds_one_category_and_prints_throughput(version):
    rings = [ProductFactory(category=CategoryFactory(name="Ring"), photos=[i]) for i in range(3)]
    ProductFactory(category=CategoryFactory(name="Bangle"), photos=[9])
    out = StringIO()
    call_command("reindex", "--sync", "--category", "ring", stdout=out, verbosity=0)
    assert "3 products, 3 photos" in out.getvalue()
    assert "embedded 3 photos" in out.getvalue()
    assert "photos/s" in out.getvalue()
    assert set(ProductEmbedding.objects.values_list("product_id", flat=True)) == {p.pk for p in rings}


def test_reindex_only_missing_leaves_embedded_rows_alone(version, model_calls):
    done = ProductFactory(photos=[1])
    index_everything()
    new = ProductFactory(photos=[2, 3])
    model_calls.update(image=0, text=0)
    out = StringIO()
    call_command("reindex", "--sync", "--only-missing", stdout=out, verbosity=0)
    assert "1 products, 2 photos" in out.getvalue()
    assert model_calls == {"image": 2, "text": 1}
    assert ProductEmbedding.objects.filter(product__in=[done, new]).count() == 2


def test_reindex_of_an_unknown_category_is_an_error(version):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="unknown category: tiaras"):
        call_command("reindex", "--sync", "--category", "tiaras", verbosity=0)


def test_reindex_through_the_worker_says_so_when_the_broker_is_down(version, monkeypatch):
    from django.core.management.base import CommandError

    ProductFactory(photos=[1])
    monkeypatch.setattr(dispatch, "send_index_task", lambda *args: False)
    with pytest.raises(CommandError, match="--sync"):
        call_command("reindex", verbosity=0)
    assert Product.objects.get().embedding_dirty


def test_index_status_json_reports_pending_failed_and_the_active_version(version):
    ProductFactory(photos=[1, 2])
    out = StringIO()
    call_command("index_status", "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert status["pending"] == 3
    assert status["failed"] == 0
    assert status["model_version"] == version.version


def test_healthz_reports_pending_failed_and_the_active_version(version, client):
    ProductFactory(photos=[1])
    body = client.get("/healthz").json()
    assert body["pending"] == 2
    assert body["failed"] == 0
    assert body["model_version"] == version.version


def test_transient_errors_are_retried_and_then_succeed(version, monkeypatch):
    from django.db import OperationalError

    calls = []

    def flaky(product_ids, image_ids):
        calls.append(product_ids)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return services.IndexReport(products_embedded=1)

    monkeypatch.setattr(services, "index_catalog", flaky)
    result = tasks.index_catalog_task.apply(kwargs={"product_ids": [1], "image_ids": []})
    assert result.successful()
    assert result.result["products"] == 1
    assert len(calls) == 2
    options = tasks.index_catalog_task
    assert options.acks_late
    assert options.retry_backoff
    assert OperationalError in options.autoretry_for


def test_the_task_name_dispatch_sends_is_the_registered_index_task():
    assert tasks.index_catalog_task.name == dispatch.INDEX_TASK
