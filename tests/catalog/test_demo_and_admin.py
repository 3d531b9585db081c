from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import Product
from tests.conftest import ROOT
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def test_demo_catalog_loads_real_products_and_is_idempotent():
    out = StringIO()
    call_command("load_demo_catalog", stdout=out, verbosity=0)
    assert "created 236" in out.getvalue()
    assert Product.objects.count() == 236
    assert set(Product.objects.values_list("category__name", flat=True)) == {
        "Ring",
        "Earring",
        "Bangle",
        "Bracelet",
        "Necklace",
        "Pendant",
    }
    ring = Product.objects.filter(category__name="Ring", gemstone="diamond").first()
    assert ring.title
    assert ring.description
    assert ring.price > 0
    assert ring.images.count() == 1
    assert Product.objects.filter(metal="rose_gold").exists()
    assert Product.objects.filter(title="Mama’s Treasure Diamond Pendant").exists()
    assert Product.objects.get(sku="BL00832-SSS300").metal == "silver"  # "Gold Plated 925 Silver"
    assert Product.objects.filter(stock=0).exists()
    assert Product.objects.filter(stock__gt=1).exists()
    out = StringIO()
    call_command("load_demo_catalog", stdout=out, verbosity=0)
    assert "created 0, updated 0, unchanged 236" in out.getvalue()


def test_admin_product_list_shows_thumbnails_prices_and_index_state(admin_client):
    ProductFactory(sku="RING-1", title="Oval sapphire ring", photos=[1, 2])
    response = admin_client.get("/admin/catalog/product/")
    html = response.content.decode()
    assert response.status_code == 200
    assert '<img src="/media/products/' in html
    assert "RING-1" in html
    assert "INR 1,000<" in html  # no ".00": decimals only where there are paise
    assert "pending" in html
    thumb = "/media/products/" + html.split('<img src="/media/products/', 1)[1].split('"', 1)[0]
    assert admin_client.get(thumb).status_code == 200


def test_admin_filters_and_search_by_sku(admin_client):
    ProductFactory(sku="FIND-ME", title="A ring")
    ProductFactory(sku="OTHER", title="Another", metal="silver")
    html = admin_client.get("/admin/catalog/product/?q=FIND").content.decode()
    assert "FIND-ME" in html
    assert "OTHER</a>" not in html
    html = admin_client.get("/admin/catalog/product/?metal__exact=silver").content.decode()
    assert "OTHER" in html
    assert "FIND-ME" not in html


def test_admin_reembed_action_marks_products_and_photos(admin_client):
    product = ProductFactory(photos=[1])
    Product.objects.filter(pk=product.pk).update(embedding_dirty=False)
    product.images.update(embedding_dirty=False)
    response = admin_client.post(
        "/admin/catalog/product/", {"action": "reembed_selected", "_selected_action": [product.pk]}, follow=True
    )
    assert "1 products marked for re-embedding" in response.content.decode()
    product.refresh_from_db()
    assert product.embedding_dirty
    assert product.images.get().embedding_dirty


def test_admin_upload_of_a_text_file_named_jpg_is_refused_with_a_reason(admin_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    product = ProductFactory()
    url = f"/admin/catalog/product/{product.pk}/change/"
    form = {
        "sku": product.sku,
        "title": product.title,
        "description": "",
        "category": product.category_id,
        "metal": "yellow_gold",
        "metal_text": "",
        "gemstone": "diamond",
        "gemstone_text": "",
        "price": "10",
        "currency": "INR",
        "stock": 1,
        "is_active": "on",
        "images-TOTAL_FORMS": 1,
        "images-INITIAL_FORMS": 0,
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
        "images-0-image": SimpleUploadedFile("ring.jpg", b"hello, I am text", content_type="image/jpeg"),
        "images-0-position": 0,
        "images-0-alt_text": "",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 200  # the form is shown again with the error
    assert "not a photo" in response.content.decode() or "Upload a valid image" in response.content.decode()
    assert product.images.count() == 0


def test_index_status_json_reports_counts():
    ProductFactory(photos=[1, 2])
    out = StringIO()
    call_command("index_status", "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert status["products"] == 1
    assert status["images"] == 2
    assert status["pending"] == 3
    assert status["embedded_images"] == 0
    assert status["failed"] == 0


def test_healthz_answers_with_parts_and_counts(client):
    ProductFactory(photos=[1])
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert body["products"] == 1
    assert body["images"] == 1
    assert body["pending"] == 2
    assert {"worker", "embedded_images", "failed", "model_version"} <= set(body)


def test_production_settings_pass_check_deploy():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "shop_search.settings.production",
        "SECRET_KEY": "x" * 20 + "a-long-random-production-secret-for-the-check-0123456789",
        "ALLOWED_HOSTS": "shop.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_admin_index_column_and_filter_read_indexed_pending_or_failed_with_the_reason(admin_client):
    from catalog.models import ProductImage

    indexed = ProductFactory(sku="DONE-1", photos=[1])
    ProductFactory(sku="WAIT-1", photos=[2])
    failed = ProductFactory(sku="FAIL-1", photos=[3])
    Product.objects.filter(pk__in=[indexed.pk, failed.pk]).update(embedding_dirty=False)
    ProductImage.objects.filter(product__in=[indexed, failed]).update(embedding_dirty=False)
    ProductImage.objects.filter(product=failed).update(embedding_error="OSError: missing file")

    def column(html: str, sku: str) -> str:
        row = html.split(f">{sku}</a>", 1)[1].split("</tr>", 1)[0]
        return row.split('class="field-index_badge">', 1)[1].split("</td>", 1)[0]

    html = admin_client.get("/admin/catalog/product/").content.decode()
    assert ">indexed</span>" in column(html, "DONE-1")
    assert ">pending</span>" in column(html, "WAIT-1")
    assert ">failed (photo 0: OSError: missing file)</span>" in column(html, "FAIL-1")
    assert "embedding dirty" not in html.lower()
    for state, sku in [("indexed", "DONE-1"), ("pending", "WAIT-1"), ("failed", "FAIL-1")]:
        html = admin_client.get(f"/admin/catalog/product/?index={state}").content.decode()
        assert [s for s in ("DONE-1", "WAIT-1", "FAIL-1") if f">{s}</a>" in html] == [sku], state
    form = admin_client.get(f"/admin/catalog/product/{indexed.pk}/change/").content.decode()
    assert ">indexed</span>" in form
    assert "Embedding dirty" not in form
    assert "/static/css/admin-catalog.css" in form
