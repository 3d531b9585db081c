"""A jewelry catalogue in a folder: ``catalog.csv`` (one photo per product) and ``views.csv``.

The format of ``manage.py evaluate`` and of the out-of-domain development set
(``catalog.csv``: ``sku,title,description,category,metal,metal_color,gemstone,price,images``;
``views.csv``: ``query_image,query_text,relevant_skus``). The catalogue's attributes are put in
the demo catalogue's words (``yellow gold``, ``sapphire``) so one attribute query means the
same thing in both, when both are searched together.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ml.data import giva
from ml.preprocess import load_image

__all__ = ["CatalogProduct", "FolderCatalog", "ViewQuery", "demo_products", "load_folder_catalog"]

_GEMSTONE_WORDS = ("sapphire", "diamond", "pearl", "ruby", "emerald", "topaz", "garnet", "citrine", "amethyst")


@dataclass(frozen=True)
class CatalogProduct:
    """A product of any catalogue as evaluation sees it."""

    sku: str
    title: str
    category: str  # lower-case singular: ring, earring, bangle, bracelet, necklace, pendant, ...
    metal: str  # "yellow gold", "white gold", "rose gold", "two-tone gold", "silver", ... or ""
    gemstone: str  # "diamond", "sapphire", ... or "" (none, or not stated)
    text: str  # what the model embeds (``ml.text.product_text``)
    image: Path | None = None  # None: a demo product, its photo is in the giva package

    def photo(self) -> Image.Image:
        if self.image is None:
            return load_image(giva.product_image_bytes(_demo_by_sku()[self.sku]))
        return load_image(self.image.read_bytes())


@dataclass(frozen=True)
class ViewQuery:
    """Another real photo of a catalogue product (a side view, a worn shot)."""

    image: Path
    sku: str


@dataclass(frozen=True)
class FolderCatalog:
    root: Path
    products: list[CatalogProduct]
    views: list[ViewQuery]


def metal_words(metal: str, colour: str) -> str:
    """The catalogue's metal fields as the demo catalogue says them ("14k gold" + "white" -> "white gold")."""
    first, colour = metal.split(",")[0].strip().lower(), colour.lower()
    if "silver" in first:
        return "silver"
    if "gold" in first:
        if "and" in colour or "," in colour:
            return "two-tone gold"
        if colour in ("white", "rose"):
            return f"{colour} gold"
        return "yellow gold"
    return first


def gemstone_words(gemstone: str) -> str:
    """The main stone ("blue sapphire, diamond" -> "sapphire")."""
    first = gemstone.split(",")[0].strip().lower()
    return next((word for word in _GEMSTONE_WORDS if word in first), first)


def load_folder_catalog(root: str | Path) -> FolderCatalog:
    from ml.text import product_text

    root = Path(root)
    products = []
    with (root / "catalog.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            category = row["category"].strip().lower()
            metal = metal_words(row.get("metal", ""), row.get("metal_color", ""))
            gemstone = gemstone_words(row.get("gemstone", ""))
            products.append(
                CatalogProduct(
                    sku=row["sku"],
                    title=row["title"].strip(),
                    category=category,
                    metal=metal,
                    gemstone=gemstone,
                    text=product_text(row["title"], category, metal, gemstone, row.get("description", "")),
                    image=root / row["images"],
                )
            )
    views = []
    views_file = root / "views.csv"
    if views_file.is_file():
        with views_file.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                for sku in row["relevant_skus"].split():
                    views.append(ViewQuery(root / row["query_image"], sku))
    return FolderCatalog(root, products, views)


def demo_products() -> list[CatalogProduct]:
    """The giva demo catalogue in the same form (the distractors of the out-of-domain gallery)."""
    return [
        CatalogProduct(
            sku=p.sku,
            title=p.title,
            category=p.category.lower(),
            metal=giva.metal_name(p),
            gemstone=giva.gemstone_name(p),
            text=giva.product_search_text(p),
        )
        for p in giva.load_products()
    ]


def _demo_by_sku() -> dict[str, giva.GivaProduct]:
    return {p.sku: p for p in giva.load_products()}
