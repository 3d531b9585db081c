"""CSV bulk import: upsert by sku, one bad row never stops the others."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from .db import run_in_transaction
from .services import ProductData, parse_price, sync_product_images, upsert_product
from .uploads import CheckedImage, UploadError, check_image_upload, read_upload
from .validators import validate_sku

logger = logging.getLogger(__name__)

CSV_COLUMNS = ["sku", "title", "description", "category", "metal", "metal_color", "gemstone", "price", "images"]


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (line, sku, reason)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + len(self.failed)


class RowError(ValueError):
    pass


def _read_photos(row: dict, images_root: Path) -> list[CheckedImage]:
    photos = []
    root = images_root.resolve()
    for relative in [part.strip() for part in (row.get("images") or "").split(";") if part.strip()]:
        path = (root / relative).resolve()
        if root not in path.parents:
            raise RowError(f"image {relative!r} is outside --images-root")
        if not path.is_file():
            raise RowError(f"image {relative!r} not found")
        try:
            with path.open("rb") as handle:  # never more than the upload cap in memory
                photos.append(check_image_upload(read_upload(handle)))
        except UploadError as exc:
            raise RowError(f"image {relative!r}: {exc.message}") from None
    if not photos:
        raise RowError("no images listed")
    return photos


def _product_data(row: dict, currency: str) -> ProductData:
    missing = [name for name in ("sku", "title", "category") if not (row.get(name) or "").strip()]
    if missing:
        raise RowError(f"missing {', '.join(missing)}")
    try:
        validate_sku(row["sku"].strip())
    except ValidationError as exc:
        raise RowError(exc.messages[0]) from None
    try:
        price, written = parse_price(row.get("price") or "", currency)  # no price: "Price on request"
    except ValueError as exc:
        raise RowError(str(exc)) from None
    if written and written != currency:
        raise RowError(f"price {row['price']!r} is in {written}; this shop sells in {currency} (SHOP_CURRENCY)")
    return ProductData(
        sku=row["sku"].strip(),
        title=row["title"],
        description=row.get("description") or "",
        category=row["category"],
        metal_text=row.get("metal") or "",
        metal_color=row.get("metal_color") or "",
        gemstone_text=row.get("gemstone") or "",
        price=price,
        currency=currency,
    )


def import_row(row: dict, images_root: Path, currency: str | None = None) -> str:
    """One row in one transaction: 'created', 'updated' or 'unchanged'."""
    data = _product_data(row, currency or settings.SHOP_CURRENCY)
    photos = _read_photos(row, images_root)

    def write() -> str:
        product, outcome = upsert_product(data)
        photos_changed = sync_product_images(product, photos)
        return "updated" if outcome == "unchanged" and photos_changed else outcome

    # Its own transaction; one PostgreSQL aborted to break a deadlock (another import, an
    # admin delete) is run again rather than reported as a failed row.
    return run_in_transaction(write, what=f"import of sku {data.sku}")


def import_catalog_csv(
    csv_path: Path, images_root: Path, progress: Callable[[int], None] | None = None
) -> ImportSummary:
    summary = ImportSummary()
    currency = settings.SHOP_CURRENCY
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        if header != CSV_COLUMNS:
            raise ValueError(f"CSV columns must be exactly {','.join(CSV_COLUMNS)}; found {','.join(header)}")
        for row in reader:
            line = reader.line_num
            sku = (row.get("sku") or "").strip()
            try:
                outcome = import_row(row, images_root, currency)
                setattr(summary, outcome, getattr(summary, outcome) + 1)
            except RowError as exc:
                summary.failed.append((line, sku, str(exc)))
                logger.warning("line %d (sku %s): %s", line, sku or "?", exc)
            except Exception as exc:  # a bad row must not stop the import; say exactly what happened
                summary.failed.append((line, sku, f"{type(exc).__name__}: {exc}"))
                logger.exception("line %d (sku %s) failed", line, sku or "?")
            if progress:
                progress(1)
    return summary
