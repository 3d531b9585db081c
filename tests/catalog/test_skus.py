"""The SKU rule at every way a SKU gets in: the validator itself, the admin's product form,
the CSV import, the database, and the migration that repairs SKUs stored before the rule."""

from __future__ import annotations

import csv
import html
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from catalog.importing import CSV_COLUMNS, import_catalog_csv
from catalog.models import Category, Product
from catalog.services import ProductData, upsert_product
from catalog.validators import SKU_MAX_LENGTH, is_valid_sku, repair_sku, validate_sku
from tests.conftest import make_photo
from tests.factories import CategoryFactory, ProductFactory

GOOD = ["R-1", "ring_2", "A.B.C", "x", "..a", ".hidden", "9" * SKU_MAX_LENGTH, "Ring-18K.v2_final"]
BAD = [
    "a/b",
    "..",
    ".",
    "",
    "a b",
    "ring\x00",
    "tab\there",
    "new\nline",
    "ümlaut",
    "a?b",
    "a#b",
    "a%2Fb",
    "a\\b",
    "9" * (SKU_MAX_LENGTH + 1),
]


@pytest.mark.parametrize("sku", GOOD)
def test_valid_skus_pass_the_rule(sku):
    assert is_valid_sku(sku)
    validate_sku(sku)


@pytest.mark.parametrize("sku", BAD, ids=[repr(s) for s in BAD])
def test_invalid_skus_are_refused_with_the_rule_named(sku):
    assert not is_valid_sku(sku)
    with pytest.raises(ValidationError) as refused:
        validate_sku(sku)
    assert refused.value.code == "invalid_sku"
    message = refused.value.messages[0]
    assert "letters A-Z" in message
    assert "'.' or '..' alone" in message
    assert f"1 to {SKU_MAX_LENGTH} characters" in message


def test_refusal_says_what_broke_the_rule():
    with pytest.raises(ValidationError, match=r"contains '/'"):
        validate_sku("a/b")
    with pytest.raises(ValidationError, match=r"65 characters long"):
        validate_sku("x" * 65)
    with pytest.raises(ValidationError, match=r"'\.\.' alone"):
        validate_sku("..")


def test_repair_is_deterministic_valid_and_unique():
    taken = {"a_b", "a_b-1"}
    assert repair_sku("a/b", taken) == "a_b-2"
    assert repair_sku("a/b", taken) == "a_b-2"
    for sku in BAD:
        fixed = repair_sku(sku, taken)
        assert is_valid_sku(fixed), (sku, fixed)
        assert fixed not in taken
    long = "ü" * 80
    assert len(repair_sku(long, {"_" * 64})) == SKU_MAX_LENGTH


# --- admin ------------------------------------------------------------------------------------


def _add_form(category: Category, sku: str) -> dict:
    return {
        "sku": sku,
        "title": "A ring",
        "description": "",
        "category": category.pk,
        "metal": "yellow_gold",
        "metal_text": "",
        "gemstone": "diamond",
        "gemstone_text": "",
        "price": "10",
        "currency": "INR",
        "stock": 1,
        "is_active": "on",
        "images-TOTAL_FORMS": 0,
        "images-INITIAL_FORMS": 0,
        "images-MIN_NUM_FORMS": 0,
        "images-MAX_NUM_FORMS": 1000,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("sku", ["a/b", "..", "ring one", "ring\x01"], ids=repr)
def test_admin_refuses_a_bad_sku_with_the_rule_next_to_the_field(admin_client, sku):
    category = CategoryFactory()
    response = admin_client.post("/admin/catalog/product/add/", _add_form(category, sku))
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    assert "errorlist" in page
    assert "letters A-Z and a-z, digits 0-9" in page
    assert not Product.objects.exists()


@pytest.mark.django_db
def test_admin_accepts_a_good_sku(admin_client):
    category = CategoryFactory()
    response = admin_client.post("/admin/catalog/product/add/", _add_form(category, "Ring-18K.v2_final"))
    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Product.objects.get().sku == "Ring-18K.v2_final"


@pytest.mark.django_db
def test_admin_refuses_to_rename_a_product_to_a_bad_sku(admin_client):
    product = ProductFactory(sku="GOOD-1")
    form = _add_form(product.category, "GOOD/1")
    response = admin_client.post(f"/admin/catalog/product/{product.pk}/change/", form)
    assert response.status_code == 200
    assert "letters A-Z" in html.unescape(response.content.decode())
    product.refresh_from_db()
    assert product.sku == "GOOD-1"


# --- import and services ----------------------------------------------------------------------


@pytest.mark.django_db
def test_import_refuses_bad_skus_and_imports_the_rest(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "r.jpg").write_bytes(make_photo(3))
    csv_path = tmp_path / "catalog.csv"
    rows = [["a/b", ".."], ["GOOD-1"], ["ring one"]]
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for sku in [sku for group in rows for sku in group]:
            writer.writerow([sku, "A ring", "", "Ring", "gold", "", "", "100", "r.jpg"])
    summary = import_catalog_csv(csv_path, photos)
    assert summary.created == 1
    assert list(Product.objects.values_list("sku", flat=True)) == ["GOOD-1"]
    assert [(line, sku) for line, sku, _ in summary.failed] == [(2, "a/b"), (3, ".."), (5, "ring one")]
    for _, _, reason in summary.failed:
        assert "Invalid SKU" in reason
        assert "letters A-Z" in reason


@pytest.mark.django_db
def test_upsert_product_refuses_a_bad_sku():
    data = ProductData(
        sku="x/y",
        title="t",
        description="",
        category="Ring",
        metal_text="gold",
        gemstone_text="",
        price=Decimal("1"),
    )
    with pytest.raises(ValidationError):
        upsert_product(data)
    assert not Product.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("sku", ["a/b", "..", "a\x01b", "x y"], ids=repr)
def test_database_refuses_a_bad_sku_written_around_the_validator(sku):
    product = ProductFactory(sku="OK-1")
    with pytest.raises(IntegrityError, match="sku_follows_sku_rule"), transaction.atomic():
        Product.objects.filter(pk=product.pk).update(sku=sku)
    assert Product.objects.get(pk=product.pk).sku == "OK-1"


# --- the migration that repairs what was stored before the rule ------------------------------


@pytest.mark.django_db(transaction=True)
def test_migration_reports_and_rewrites_bad_skus_keeping_them_unique(capsys):
    before, after = [("catalog", "0004_price_on_request_and_shop_currency")], [("catalog", "0005_sku_rule")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        OldCategory = apps.get_model("catalog", "Category")
        OldProduct = apps.get_model("catalog", "Product")
        category = OldCategory.objects.create(name="Ring", slug="ring")
        stored = ["a/b", "a_b", "..", ".", "GOOD-1", "ring one", "x\x01y"]
        for sku in stored:
            OldProduct.objects.create(sku=sku, title=f"title of {sku!r}", category=category, price=Decimal("5"))
        capsys.readouterr()
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
    report = capsys.readouterr().out
    skus = dict(Product.objects.values_list("title", "sku"))
    assert skus == {
        "title of 'a/b'": "a_b-1",
        "title of 'a_b'": "a_b",
        "title of '..'": "SKU__",
        "title of '.'": "SKU_",
        "title of 'GOOD-1'": "GOOD-1",
        "title of 'ring one'": "ring_one",
        "title of 'x\\x01y'": "x_y",
    }
    legacy = dict(Product.objects.values_list("sku", "legacy_sku"))
    assert legacy["a_b-1"] == "a/b"
    assert legacy["SKU__"] == ".."
    assert legacy["GOOD-1"] == ""
    assert legacy["a_b"] == ""
    assert all(is_valid_sku(sku) for sku in skus.values())
    assert "'a/b' -> 'a_b-1'" in report
    assert "5 SKU(s) broke the SKU rule" in report


def test_the_migration_repairs_as_the_rule_does_today():
    import importlib

    migration = importlib.import_module("catalog.migrations.0005_sku_rule")
    for sku in [*GOOD, *BAD]:
        assert migration.is_valid_sku(sku) == is_valid_sku(sku), sku
        assert migration.repair_sku(sku, {"a_b"}) == repair_sku(sku, {"a_b"}), sku
