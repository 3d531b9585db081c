"""`manage.py import_catalog` as a shell or cron job sees it: exit status, and photos whose
file went missing are flagged and repaired by importing again."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection

from catalog.models import Product, ProductImage
from catalog.services import missing_photo_files
from tests.catalog.test_import import HEADER, run_import
from tests.conftest import ROOT, database_url, make_photo


def write_rows(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


GOOD = ["R-1", "Ring", "", "Ring", "gold", "", "", "100", "r0.jpg"]
BAD = ["R-2", "Ring", "", "Ring", "gold", "", "", "cheap", "r0.jpg"]


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    (root / "r0.jpg").write_bytes(make_photo(0))
    return root


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("rows", "status"), [([GOOD], 0), ([GOOD, BAD], 3), ([BAD], 4)])
def test_manage_py_import_exits_non_zero_when_rows_fail_and_distinctly_when_all_fail(
    tmp_path, photos, settings, rows, status
):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop_search.settings.test",  # explicit settings and URLs win
        "DATABASE_URL": database_url(connection.settings_dict),
        "REDIS_URL": settings.REDIS_URL,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    csv_path = write_rows(tmp_path / "catalog.csv", rows)
    result = subprocess.run(
        [sys.executable, "manage.py", "import_catalog", str(csv_path), "--images-root", str(photos)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == status, result.stdout + result.stderr
    assert Product.objects.filter(sku="R-1").exists() == (GOOD in rows)
    if status:
        assert "failed; see the lines above" in result.stderr
        assert "line " in result.stderr
    if GOOD in rows:  # the photo went to the configured media storage, nowhere else
        stored = ProductImage.objects.get().image.name
        assert (Path(settings.MEDIA_ROOT) / stored).is_file()


@pytest.mark.django_db
def test_a_photo_whose_file_is_missing_is_flagged_and_restored_by_importing_again(tmp_path, photos, admin_client):
    csv_path = write_rows(tmp_path / "catalog.csv", [GOOD])
    run_import(csv_path, photos)
    image = ProductImage.objects.get()
    Path(image.image.path).unlink()
    ProductImage.objects.filter(pk=image.pk).update(embedding_dirty=False)

    assert [row.pk for row in missing_photo_files()] == [image.pk]
    assert "photo file missing" in admin_client.get("/admin/catalog/product/").content.decode()
    out = StringIO()
    call_command("index_status", "--json", stdout=out)
    assert json.loads(out.getvalue())["photos_missing"] == 1
    cache.delete("healthz:photos-missing")
    assert admin_client.get("/healthz").json()["photos_missing"] == 1

    out, _ = run_import(csv_path, photos)

    assert "updated 1" in out
    image.refresh_from_db()
    assert Path(image.image.path).is_file()
    assert image.embedding_dirty  # embedded again from the restored file
    assert missing_photo_files() == []
    cache.delete("healthz:photos-missing")
    assert admin_client.get("/healthz").json()["photos_missing"] == 0
    assert "photo file missing" not in admin_client.get("/admin/catalog/product/").content.decode()
