from __future__ import annotations

import csv
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.importing import import_catalog_csv
from catalog.models import Category, Product, ProductImage
from tests.conftest import make_photo

pytestmark = pytest.mark.django_db

HEADER = ["sku", "title", "description", "category", "metal", "metal_color", "gemstone", "price", "images"]


def write_catalog(folder: Path, rows: list[list[str]]) -> Path:
    path = folder / "catalog.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.fixture
def images_root(tmp_path):
    root = tmp_path / "photos"
    (root / "rings").mkdir(parents=True)
    for seed in range(4):
        (root / "rings" / f"r{seed}.jpg").write_bytes(make_photo(seed))
    (root / "rings" / "broken.jpg").write_bytes(make_photo(9)[:300])
    return root


def run_import(csv_path: Path, images_root: Path, *, status: int = 0) -> tuple[str, str]:
    """Runs the command; `status` is the exit status it must end with (1, a bad file, raises)."""
    out, err = StringIO(), StringIO()
    try:
        call_command("import_catalog", str(csv_path), "--images-root", str(images_root), stdout=out, stderr=err)
        code = 0
    except CommandError as exc:
        if exc.returncode == 1:
            raise
        code = exc.returncode
    assert code == status, out.getvalue() + err.getvalue()
    return out.getvalue(), err.getvalue()


def test_import_with_broken_rows_imports_the_rest_and_reports_each_line(tmp_path, images_root):
    csv_path = write_catalog(
        tmp_path,
        [
            [
                "R-1",
                "Oval sapphire ring",
                "A ring",
                "Ring",
                "18K Gold",
                "rose",
                "Oval blue sapphire",
                "1,299.50",
                "rings/r0.jpg;rings/r1.jpg",
            ],
            ["R-2", "Missing photo ring", "", "Ring", "gold", "", "", "100", "rings/nope.jpg"],
            ["R-3", "Bad price ring", "", "Ring", "gold", "", "", "cheap", "rings/r2.jpg"],
            ["R-4", "Truncated photo ring", "", "Ring", "gold", "", "", "100", "rings/broken.jpg"],
            [
                "E-1",
                "Pearl studs",
                "Earrings",
                "Earring Studs",
                "Sterling silver 925",
                "",
                "pearl",
                "INR 450",
                "rings/r3.jpg",
            ],
        ],
    )
    out, err = run_import(csv_path, images_root, status=3)  # some rows failed
    assert "created 2, updated 0, unchanged 0, failed 3" in out
    assert "line 3 (sku R-2)" in err
    assert "not found" in err
    assert "line 4 (sku R-3)" in err
    assert "price" in err
    assert "line 5 (sku R-4)" in err
    assert "truncated" in err.lower()
    assert set(Product.objects.values_list("sku", flat=True)) == {"R-1", "E-1"}
    ring = Product.objects.get(sku="R-1")
    assert ring.images.count() == 2
    assert ring.price == Decimal("1299.50")
    assert (ring.metal, ring.metal_text) == ("rose_gold", "rose 18K Gold")
    assert (ring.gemstone, ring.gemstone_text) == ("sapphire", "Oval blue sapphire")
    studs = Product.objects.get(sku="E-1")
    assert studs.metal == "silver"
    assert studs.gemstone == "pearl"
    assert Category.objects.filter(name="Earring Studs").exists()


def test_importing_the_same_file_twice_changes_nothing(tmp_path, images_root):
    csv_path = write_catalog(
        tmp_path,
        [
            ["R-1", "Ring", "A ring", "Ring", "gold", "white", "diamond", "100", "rings/r0.jpg;rings/r1.jpg"],
        ],
    )
    run_import(csv_path, images_root)
    before = list(Product.objects.values("id", "updated_at", "embedding_marked_at"))
    images_before = list(ProductImage.objects.values("id", "content_hash", "position"))
    out, _ = run_import(csv_path, images_root)
    assert "created 0, updated 0, unchanged 1, failed 0" in out
    assert list(Product.objects.values("id", "updated_at", "embedding_marked_at")) == before
    assert list(ProductImage.objects.values("id", "content_hash", "position")) == images_before


def test_reimport_with_new_title_and_dropped_photo_updates_in_place(tmp_path, images_root):
    run_import(
        write_catalog(
            tmp_path,
            [
                ["R-1", "Ring", "", "Ring", "gold", "", "", "100", "rings/r0.jpg;rings/r1.jpg"],
            ],
        ),
        images_root,
    )
    product = Product.objects.get(sku="R-1")
    Product.objects.filter(pk=product.pk).update(embedding_dirty=False)
    out, _ = run_import(
        write_catalog(
            tmp_path,
            [
                ["R-1", "Ring with a new name", "", "Ring", "gold", "", "", "100", "rings/r1.jpg"],
            ],
        ),
        images_root,
    )
    assert "updated 1" in out
    product.refresh_from_db()
    assert product.title == "Ring with a new name"
    assert product.embedding_dirty
    assert product.images.count() == 1


def test_csv_with_wrong_columns_is_refused_before_touching_the_catalog(tmp_path, images_root):
    path = tmp_path / "bad.csv"
    path.write_text("sku,name\nX,Y\n")
    with pytest.raises(Exception, match="columns must be exactly"):
        run_import(path, images_root)
    assert Product.objects.count() == 0


def test_image_path_outside_images_root_is_refused(tmp_path, images_root):
    (tmp_path / "secret.jpg").write_bytes(make_photo(1))
    out, err = run_import(
        write_catalog(
            tmp_path,
            [
                ["R-1", "Ring", "", "Ring", "gold", "", "", "100", "../secret.jpg"],
            ],
        ),
        images_root,
        status=4,  # every row failed
    )
    assert "failed 1" in out
    assert "outside --images-root" in err


def test_rows_without_a_price_import_as_price_on_request(tmp_path, images_root):
    csv_path = write_catalog(
        tmp_path,
        [
            ["POR-1", "High jewelry necklace", "", "Necklace", "platinum", "", "diamond", "", "rings/r0.jpg"],
            ["POR-2", "Tiara", "", "Necklace", "18k gold", "", "", "Price on request", "rings/r1.jpg"],
        ],
    )
    summary = import_catalog_csv(csv_path, images_root)
    assert (summary.created, summary.failed) == (2, [])
    assert list(Product.objects.order_by("sku").values_list("price", flat=True)) == [None, None]
    assert import_catalog_csv(csv_path, images_root).unchanged == 2


@pytest.mark.parametrize(
    ("written", "shop_currency", "price"),
    [
        ("₹37,555", "INR", Decimal("37555")),
        ("37555 INR", "INR", Decimal("37555")),
        ("$1,200.00", "USD", Decimal("1200")),
        ("13.144.000 ₫", "VND", Decimal("13144000")),
        ("31052000 VND", "VND", Decimal("31052000")),
        ("1.299,50 €", "EUR", Decimal("1299.50")),
        ("13293000", "VND", Decimal("13293000")),
    ],
)
def test_prices_written_with_the_shops_currency_import(tmp_path, images_root, settings, written, shop_currency, price):
    settings.SHOP_CURRENCY = shop_currency
    csv_path = write_catalog(tmp_path, [["P-1", "Ring", "", "Ring", "gold", "", "", written, "rings/r0.jpg"]])
    summary = import_catalog_csv(csv_path, images_root)
    assert summary.failed == []
    product = Product.objects.get(sku="P-1")
    assert (product.price, product.currency) == (price, shop_currency)


def test_a_price_in_another_currency_is_refused_with_its_line(tmp_path, images_root, settings):
    settings.SHOP_CURRENCY = "VND"
    csv_path = write_catalog(
        tmp_path,
        [
            ["VN-1", "Nhẫn vàng", "", "Ring", "gold", "", "", "13.144.000 ₫", "rings/r0.jpg"],
            ["IN-1", "Gold ring", "", "Ring", "gold", "", "", "37555 INR", "rings/r1.jpg"],
            ["IN-2", "Gold ring", "", "Ring", "gold", "", "", "₹37,555", "rings/r2.jpg"],
        ],
    )
    summary = import_catalog_csv(csv_path, images_root)
    assert summary.created == 1
    assert [(line, sku) for line, sku, _ in summary.failed] == [(3, "IN-1"), (4, "IN-2")]
    assert all("is in INR; this shop sells in VND" in reason for _, _, reason in summary.failed)
    assert list(Product.objects.values_list("sku", flat=True)) == ["VN-1"]


def test_titles_and_descriptions_in_other_scripts_import_untouched(tmp_path, images_root, settings):
    settings.SHOP_CURRENCY = "VND"
    vietnamese = "Mặt dây chuyền Vàng trắng 14K đính ngọc trai Akoya PNJ"
    hindi = "सोने की अंगूठी, हीरे के साथ"
    description = "Thương hiệu: PNJ; Giới tính: Nữ; Loại đá chính: Akoya Pearl — हाथ से बना"
    csv_path = write_catalog(
        tmp_path,
        [
            [
                "PNJ-1",
                vietnamese,
                description,
                "Mặt dây chuyền",
                "14k gold",
                "white",
                "pearl, cubic zirconia",
                "9522000",
                "rings/r0.jpg",
            ],
            ["HI-1", hindi, "", "अंगूठी", "22k gold", "", "", "", "rings/r1.jpg"],
            ["HI-2", "सोने का हार", "", "हार", "22k gold", "", "", "", "rings/r2.jpg"],
            ["VN-2", "Dây cổ vàng", "", "Dây cổ", "18k gold", "", "", "", "rings/r3.jpg"],
        ],
    )
    assert import_catalog_csv(csv_path, images_root).failed == []
    pendant, ring = Product.objects.get(sku="PNJ-1"), Product.objects.get(sku="HI-1")
    assert (pendant.title, pendant.description, pendant.category.name) == (vietnamese, description, "Mặt dây chuyền")
    assert (ring.title, ring.category.name) == (hindi, "अंगूठी")
    # Each category keeps its own name; slugs stay ASCII for URLs and the API's filter.
    assert dict(Category.objects.values_list("name", "slug")) == {
        "Mặt dây chuyền": "mat-day-chuyen",
        "अंगूठी": "category",
        "हार": "category-2",
        "Dây cổ": "day-co",
    }
    assert pendant.metal == "white_gold"
    assert (pendant.gemstone, pendant.gemstone_text) == ("pearl", "pearl, cubic zirconia")  # the main stone first
