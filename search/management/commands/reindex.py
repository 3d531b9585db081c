from __future__ import annotations

import time

from django.core.management.base import BaseCommand
from django.utils import timezone
from tqdm import tqdm

from catalog.models import Product, ProductImage
from search import indexing
from search.engine import active_version
from search.signals import send_index_task

CHUNK_PRODUCTS = 16


class Command(BaseCommand):
    help = "Re-embed the catalog (or what is missing) through the worker, or in-process with --sync."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="embed in this process, no worker needed")
        parser.add_argument("--only-missing", action="store_true", help="only rows with no embedding yet")
        parser.add_argument("--category", action="append", default=[], help="category slug or name (repeatable)")
        parser.add_argument("--no-wait", action="store_true", help="enqueue and return without watching")

    def handle(self, *args, sync: bool, only_missing: bool, category: list[str], no_wait: bool, **options):
        version = active_version()
        products = Product.objects.all()
        if category:
            products = products.filter(category__slug__in=category) | products.filter(category__name__in=category)
        if only_missing:
            missing_products, missing_images = indexing.missing_ids(version)
            product_ids = sorted(set(products.filter(pk__in=missing_products).values_list("pk", flat=True))
                                 | set(ProductImage.objects.filter(pk__in=missing_images, product__in=products)
                                       .values_list("product_id", flat=True)))
        else:
            product_ids = sorted(products.values_list("pk", flat=True))
            now = timezone.now()
            Product.objects.filter(pk__in=product_ids).update(embedding_dirty=True, embedding_marked_at=now, embedding_error="")
            ProductImage.objects.filter(product_id__in=product_ids).update(
                embedding_dirty=True, embedding_marked_at=now, embedding_error=""
            )
        photo_ids = list(ProductImage.objects.filter(product_id__in=product_ids).values_list("pk", "product_id"))
        photos_by_product: dict[int, list[int]] = {}
        for photo_id, product_id in photo_ids:
            photos_by_product.setdefault(product_id, []).append(photo_id)
        self.stdout.write(f"{len(product_ids)} products, {len(photo_ids)} photos to embed with {version.version}")
        quiet = options["verbosity"] == 0
        started = time.perf_counter()
        chunks = [product_ids[i : i + CHUNK_PRODUCTS] for i in range(0, len(product_ids), CHUNK_PRODUCTS)]
        if sync:
            failed = 0
            with tqdm(total=len(photo_ids), unit="photo", desc="embedding", disable=quiet) as bar:
                for chunk in chunks:
                    photos = [pid for product in chunk for pid in photos_by_product.get(product, [])]
                    report = indexing.index_catalog(chunk, photos)
                    failed += len(report.failures)
                    bar.update(len(photos))
        else:
            for chunk in chunks:
                send_index_task(chunk, [pid for product in chunk for pid in photos_by_product.get(product, [])])
            if no_wait:
                self.stdout.write(f"enqueued {len(chunks)} tasks")
                return
            failed = self._watch(len(photo_ids), quiet)
        elapsed = time.perf_counter() - started
        rate = len(photo_ids) / elapsed if elapsed > 0 else 0.0
        self.stdout.write(f"embedded {len(photo_ids)} photos in {elapsed:.1f}s ({rate:.1f} photos/s), {failed} failed")

    def _watch(self, total: int, quiet: bool) -> int:
        """Follow the worker through the pending count until nothing is left."""
        with tqdm(total=total, unit="photo", desc="worker", disable=quiet) as bar:
            while True:
                pending = ProductImage.objects.filter(embedding_dirty=True).count()
                bar.n = max(0, total - pending)
                bar.refresh()
                if pending == 0 and not Product.objects.filter(embedding_dirty=True).exists():
                    break
                time.sleep(0.5)
        return ProductImage.objects.exclude(embedding_error="").count()
