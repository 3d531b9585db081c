"""The demo catalog: 236 real jewelry products from the `giva-databricks` package."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from catalog.demo import demo_product_data
from catalog.models import DemoCatalogSeed, Product
from catalog.services import sync_product_images, upsert_product
from catalog.signals import bulk_change
from catalog.uploads import check_image_upload
from ml.data.giva import GivaNotInstalled, load_products, product_image_bytes


def start_seed() -> DemoCatalogSeed | str:
    """The seed to fill, or why start-up leaves the catalogue alone."""
    if not settings.DEMO_CATALOG:
        return "off (DEMO_CATALOG=0): the shop starts empty"
    with transaction.atomic():
        seed = DemoCatalogSeed.objects.select_for_update().order_by("pk").first()
        if seed is not None and seed.finished_at is not None:
            return f"seeded once on {seed.started_at:%Y-%m-%d}; the catalogue is the merchant's now"
        if seed is None:
            if Product.objects.exists():
                DemoCatalogSeed.objects.create(finished_at=timezone.now())
                return "the catalogue already has products: demo not loaded"
            seed = DemoCatalogSeed.objects.create()
    return seed  # new, or interrupted last time: fill in what is missing


class Command(BaseCommand):
    help = (
        "Load the demo catalog (real photos and texts from giva-databricks). Without --seed it "
        "creates or restores every demo product (idempotent). With --seed (what `make run` does) "
        "it loads once, into an empty catalogue only, and never touches a product again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="load only the first N products")
        parser.add_argument(
            "--seed",
            action="store_true",
            help="start-up mode: only into an empty, never-seeded catalogue; honours DEMO_CATALOG=0",
        )

    def handle(self, *args, limit: int | None = None, seed: bool = False, **options):
        seed_row: DemoCatalogSeed | None = None
        if seed:
            started = start_seed()
            if isinstance(started, str):
                self.stdout.write(f"demo catalog: {started}")
                return
            seed_row = started
        try:
            items = list(load_products()[:limit])
        except GivaNotInstalled as exc:
            raise CommandError(str(exc)) from None
        if seed_row is not None:  # an interrupted seed resumes, creating only what is missing
            present = set(Product.objects.filter(sku__in=[item.sku for item in items]).values_list("sku", flat=True))
            items = [item for item in items if item.sku not in present]
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
        if seed_row is not None:
            seed_row.products = Product.objects.count()
            seed_row.finished_at = timezone.now()
            seed_row.save(update_fields=["products", "finished_at"])
        self.stdout.write(
            f"demo catalog: created {counts['created']}, updated {counts['updated']}, unchanged {counts['unchanged']}"
        )
