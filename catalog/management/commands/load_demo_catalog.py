"""The demo catalog: 236 real jewelry products from the `giva-databricks` package."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from tqdm import tqdm

from catalog.services import ProductData, sync_product_images, upsert_product
from catalog.signals import bulk_change
from catalog.uploads import check_image_upload
from ml.data.giva import GivaNotInstalled, load_products, product_image_bytes


def demo_product_data(item) -> ProductData:
    metal = " ".join(filter(None, [item.metal_type.replace("_", " "), item.material]))
    return ProductData(
        sku=item.sku,
        title=item.title,
        description=item.description,
        category=item.category,
        metal_text=metal,
        metal_color=item.metal_color.replace("_", " "),
        gemstone_text=" ".join(filter(None, [item.stone_shape, item.stone_color, item.stone_type]))
        if item.stone_type
        else "",
        price=item.price_inr,
        currency="INR",
    )


class Command(BaseCommand):
    help = "Load the demo catalog (real photos and texts from giva-databricks). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="load only the first N products")

    def handle(self, *args, limit: int | None = None, **options):
        try:
            items = load_products()[:limit]
        except GivaNotInstalled as exc:
            raise CommandError(str(exc)) from None
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        with bulk_change():  # indexing sends tasks of EMBED_IMAGE_BATCH_SIZE photos, not one per product
            for item in tqdm(items, unit="product", desc="demo catalog", disable=options["verbosity"] == 0):
                with transaction.atomic():
                    product, outcome = upsert_product(demo_product_data(item))
                    if (
                        sync_product_images(product, [check_image_upload(product_image_bytes(item))])
                        and outcome == "unchanged"
                    ):
                        outcome = "updated"
                counts[outcome] += 1
        self.stdout.write(
            f"demo catalog: created {counts['created']}, updated {counts['updated']}, unchanged {counts['unchanged']}"
        )
