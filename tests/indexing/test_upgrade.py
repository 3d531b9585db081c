"""Versioned embeddings: model_upgrade builds a new version next to the serving one and
switches atomically; prune_embeddings frees the retired one."""

from __future__ import annotations

import threading
import time
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from catalog.models import ProductImage
from indexing.engine import active_version
from indexing.models import ImageEmbedding, ModelVersion, ProductEmbedding
from indexing.services import backfill_complete, index_catalog, index_status
from indexing.vector_index import hnsw_indexes
from search.query import SearchQuery, search
from tests.conftest import make_photo, wait_until
from tests.factories import CategoryFactory, ProductFactory

NEW_FUSION = "random:7"


def indexed_catalog(count: int = 5):
    ring = CategoryFactory(name="Ring")  # one category: the photo alone decides the order
    products = [ProductFactory(category=ring, photos=[300 + seed]) for seed in range(count)]
    index_catalog([p.pk for p in products], ProductImage.objects.values_list("pk", flat=True))
    return products


def upgrade(*options: str) -> str:
    out = StringIO()
    call_command("model_upgrade", "tiny-test", "--fusion-weights", NEW_FUSION, *options, stdout=out, verbosity=0)
    return out.getvalue()


def rows_per_version(version) -> tuple[int, int]:
    return (
        ImageEmbedding.objects.filter(model_version=version).count(),
        ProductEmbedding.objects.filter(model_version=version).count(),
    )


@pytest.mark.django_db
def test_model_upgrade_sync_backfills_the_new_version_and_switches(version):
    products = indexed_catalog()
    output = upgrade("--sync")
    new = ModelVersion.objects.get(state=ModelVersion.State.ACTIVE)
    assert new.version != version.version
    assert new.version in output
    assert ModelVersion.objects.get(pk=version.pk).state == ModelVersion.State.RETIRED
    assert new.weights == {"fusion_weights": NEW_FUSION}
    assert rows_per_version(new) == rows_per_version(version) == (5, 5)
    assert set(hnsw_indexes(new.pk)) == {
        f"indexing_imageembedding_hnsw_v{new.pk}",
        f"indexing_productembedding_hnsw_v{new.pk}",
    }
    # The photo side is reused as raw features; only the fused vectors differ.
    old_row = ImageEmbedding.objects.get(image__product=products[0], model_version=version)
    new_row = ImageEmbedding.objects.get(image__product=products[0], model_version=new)
    assert np.allclose(old_row.features, new_row.features)
    assert not np.allclose(old_row.embedding, new_row.embedding)
    response = search(SearchQuery(image=make_photo(302), k=3))
    assert response.model_version == new.version
    assert response.results[0].product == products[2]


@pytest.mark.django_db
def test_no_switch_builds_the_new_version_and_keeps_serving_the_old_one(version):
    indexed_catalog(3)
    upgrade("--sync", "--no-switch")
    new = ModelVersion.objects.get(state=ModelVersion.State.BACKFILLING)
    assert backfill_complete(new)
    assert rows_per_version(new) == (3, 3)
    assert search(SearchQuery(image=make_photo(300))).model_version == version.version
    assert index_status()["backfilling"] == [new.version]

    upgrade("--sync")  # again, without --no-switch: nothing left to build, it switches
    assert active_version().pk == new.pk
    assert search(SearchQuery(image=make_photo(300))).model_version == new.version


@pytest.mark.django_db
def test_upgrading_to_the_serving_model_changes_nothing(version):
    indexed_catalog(1)
    out = StringIO()
    call_command("model_upgrade", "tiny-test", "--sync", stdout=out, verbosity=0)
    assert "already serving" in out.getvalue()
    assert list(ModelVersion.objects.values_list("version", "state")) == [(version.version, "active")]


@pytest.mark.django_db
def test_upgrade_with_weights_that_do_not_exist_is_a_clear_error(version):
    with pytest.raises(CommandError, match="not found"):
        call_command("model_upgrade", "tiny-test", "--fusion-weights", "/nowhere/fusion.pt", "--sync", verbosity=0)
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db
def test_a_version_with_other_backbones_stores_features_of_another_width_in_the_same_tables(version):
    """effnet-lite2 (1280-d) + MiniLM (384-d) + hashed words (512-d) next to tiny-test (16-d): raw feature columns
    take any width; the shared search dimension stays 512."""
    products = indexed_catalog(2)
    call_command("model_upgrade", "effnet-lite2-minilm", "--fusion-weights", "random:0", "--sync", verbosity=0)
    new = active_version()
    assert new.model_name == "effnet-lite2-minilm"
    image = ImageEmbedding.objects.get(image__product=products[0], model_version=new)
    product = ProductEmbedding.objects.get(product=products[0], model_version=new)
    assert (len(image.features), len(product.text_features), len(product.embedding)) == (1280, 384 + 512, 512)
    assert len(ImageEmbedding.objects.get(image__product=products[0], model_version=version).features) == 16
    assert search(SearchQuery(image=make_photo(301), k=2)).results[0].product == products[1]


@pytest.mark.django_db
def test_prune_deletes_rows_and_indexes_of_retired_versions_only(version):
    indexed_catalog(4)
    upgrade("--sync")
    new = active_version()
    out = StringIO()
    call_command("prune_embeddings", "--yes", stdout=out, verbosity=0)
    assert f"pruned {version.version}" in out.getvalue()
    assert rows_per_version(version) == (0, 0)
    assert hnsw_indexes(version.pk) == []
    assert rows_per_version(new) == (4, 4)
    assert len(hnsw_indexes(new.pk)) == 2
    assert ModelVersion.objects.get(pk=version.pk).state == ModelVersion.State.RETIRED  # kept for the record
    out = StringIO()
    call_command("prune_embeddings", "--yes", stdout=out, verbosity=0)
    assert "nothing to prune" in out.getvalue()


@pytest.mark.django_db
def test_prune_off_a_terminal_without_yes_deletes_nothing(version, monkeypatch):
    indexed_catalog(1)
    upgrade("--sync")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="--yes"):
        call_command("prune_embeddings", verbosity=0)
    assert rows_per_version(version) == (1, 1)


@pytest.mark.django_db
def test_going_back_to_a_pruned_version_rebuilds_it(version):
    indexed_catalog(2)
    upgrade("--sync")
    call_command("prune_embeddings", "--yes", verbosity=0)
    call_command("model_upgrade", "tiny-test", "--sync", verbosity=0)  # the configured weights again
    assert active_version().pk == version.pk
    assert rows_per_version(version) == (2, 2)
    assert len(hnsw_indexes(version.pk)) == 2


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_during_an_upgrade_search_serves_the_old_version_until_the_switch_and_the_new_one_after(
    version, celery_worker, settings
):
    products = indexed_catalog(8)
    settings.EMBED_IMAGE_BATCH_SIZE = 2  # backfill tasks of 2 photos, each slowed down in the worker
    celery_worker(env={"EMBED_IMAGE_BATCH_SIZE": "2", "INDEX_TEST_BATCH_DELAY_SECONDS": "0.5"})
    photo = make_photo(303)
    outcome: dict = {}

    def run_upgrade() -> None:
        try:
            outcome["output"] = upgrade("--timeout", "60")
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    upgrading = threading.Thread(target=run_upgrade)
    upgrading.start()
    seen = []  # (switched before the query, served version, switched after the query)
    late = None
    while upgrading.is_alive():
        if late is None and ModelVersion.objects.filter(state=ModelVersion.State.BACKFILLING).exists():
            late = ProductFactory(
                sku="ADDED-DURING-UPGRADE", category=products[0].category, photos=[909]
            )  # an edit during the backfill
        before = ModelVersion.objects.filter(state=ModelVersion.State.RETIRED).exists()
        response = search(SearchQuery(image=photo, k=3))
        after = ModelVersion.objects.filter(state=ModelVersion.State.RETIRED).exists()
        seen.append((before, response.model_version, after))
        assert response.results[0].product == products[3]
        time.sleep(0.05)
    upgrading.join()
    assert "error" not in outcome, outcome.get("error")

    new = active_version()
    assert new.pk != version.pk
    assert ModelVersion.objects.get(pk=version.pk).state == ModelVersion.State.RETIRED
    served_old = [entry for entry in seen if entry[1] == version.version]
    assert len(served_old) >= 3, "search went on while the new version was being built"
    assert all(not before for before, served, _ in seen if served == version.version)
    assert all(after for _, served, after in seen if served == new.version)
    response = search(SearchQuery(image=photo, k=3))
    assert response.model_version == new.version
    assert response.results[0].product == products[3]
    assert rows_per_version(version)[0] >= 8
    assert rows_per_version(new)[0] >= 8
    assert late is not None
    assert wait_until(lambda: index_status()["pending"] == 0, timeout=20), index_status()
    assert rows_per_version(new) == (9, 9)
    response = search(SearchQuery(image=make_photo(909), k=3))
    assert response.model_version == new.version
    assert response.results[0].product == late
