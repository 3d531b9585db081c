"""Re-embed the catalog, or only what has no vector yet, through the worker or in-process."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from tqdm import tqdm

from catalog.models import Category, Product, ProductImage
from catalog.services import flag_for_reembedding
from indexing import services
from indexing.dispatch import IndexBatch, index_chunks
from indexing.engine import active_version

WATCH_INTERVAL_SECONDS = 0.5


class Command(BaseCommand):
    help = "Re-embed the catalog (or what is missing) through the worker, or in-process with --sync."

    def add_arguments(self, parser):
        parser.add_argument("--sync", action="store_true", help="embed in this process, no worker needed")
        parser.add_argument("--only-missing", action="store_true", help="only rows with no embedding yet")
        parser.add_argument("--category", action="append", default=[], help="category slug or name (repeatable)")
        parser.add_argument("--no-wait", action="store_true", help="enqueue and return without watching")
        parser.add_argument("--timeout", type=float, default=None, help="stop watching after this many seconds")

    def handle(
        self,
        *args,
        sync: bool,
        only_missing: bool,
        category: list[str],
        no_wait: bool,
        timeout: float | None,
        **options,
    ):
        version = active_version()
        products = self._selection(category)
        if only_missing:
            missing_products, missing_images = services.missing_ids(version)
            image_ids = sorted(
                ProductImage.objects.filter(pk__in=missing_images, product__in=products).values_list("pk", flat=True)
            )
            product_ids = sorted(
                set(products.filter(pk__in=missing_products).values_list("pk", flat=True))
                | set(ProductImage.objects.filter(pk__in=image_ids).values_list("product_id", flat=True))
            )
        else:
            product_ids = sorted(products.values_list("pk", flat=True))
            image_ids = sorted(flag_for_reembedding(product_ids)[1])
        self.stdout.write(f"{len(product_ids)} products, {len(image_ids)} photos to embed with {version.version}")
        if not product_ids:
            return
        quiet = options["verbosity"] == 0
        started = time.perf_counter()
        if sync:
            embedded, failed = self._run_here(product_ids, image_ids, quiet)
        else:
            if not IndexBatch(product_ids, image_ids).send():
                raise CommandError(
                    "The broker is unavailable: the rows stay marked and the sweep will enqueue them once it "
                    "is back. Run with --sync to embed in this process now."
                )
            if no_wait:
                self.stdout.write("enqueued; follow with `manage.py index_status`")
                return
            embedded, failed = self._watch(products, len(image_ids), quiet, timeout)
        elapsed = time.perf_counter() - started
        rate = embedded / elapsed if elapsed > 0 else 0.0
        self.stdout.write(f"embedded {embedded} photos in {elapsed:.1f}s ({rate:.1f} photos/s), {failed} failed")

    def _selection(self, category: list[str]):
        products = Product.objects.all()
        if not category:
            return products
        query = Q()
        for name in category:
            query |= Q(slug=name) | Q(name__iexact=name)
        found = Category.objects.filter(query)
        unknown = [
            name for name in category if not any(c.slug == name or c.name.lower() == name.lower() for c in found)
        ]
        if unknown:
            raise CommandError(f"unknown category: {', '.join(unknown)}")
        return products.filter(category__in=found)

    def _run_here(self, product_ids: list[int], image_ids: list[int], quiet: bool) -> tuple[int, int]:
        embedded = failed = 0
        with tqdm(total=len(image_ids), unit="photo", desc="embedding", disable=quiet) as bar:
            for chunk_products, chunk_images in index_chunks(product_ids, image_ids):
                report = services.index_catalog(chunk_products, chunk_images)
                embedded += report.images_embedded
                failed += len(report.failures)
                bar.update(len(chunk_images))
        return embedded, failed

    def _watch(self, products, total: int, quiet: bool, timeout: float | None) -> tuple[int, int]:
        """Follow the worker through what is left of the selection until nothing is."""
        from indexing.health import check_worker

        if check_worker() != "ok":
            self.stderr.write("no worker answers: start one (`make run` does) or use --sync")
        deadline = None if timeout is None else time.monotonic() + timeout
        with tqdm(total=total, unit="photo", desc="worker", disable=quiet) as bar:
            while True:
                left_products, left_images = services.outstanding_counts(products=products)
                bar.n = max(0, total - left_images)
                bar.refresh()
                if not left_products and not left_images:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError(f"{left_products} products, {left_images} photos still pending after {timeout}s")
                time.sleep(WATCH_INTERVAL_SECONDS)
        failed = ProductImage.objects.filter(product__in=products).exclude(embedding_error="").count()
        return max(0, total - failed), failed
