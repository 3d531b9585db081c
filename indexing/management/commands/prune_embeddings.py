"""Free the space of retired model versions: their vectors and partial HNSW indexes.

The version rows stay (when each served, for the record); `model_upgrade` back to one of
them rebuilds what was pruned.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from indexing.models import ImageEmbedding, ModelVersion, ProductEmbedding
from indexing.vector_index import TABLES, drop_hnsw_indexes, hnsw_indexes

DELETE_CHUNK = 10_000  # rows per statement: short transactions, no long lock on the table


class Command(BaseCommand):
    help = "Delete the embedding rows and drop the HNSW indexes of retired model versions."

    def add_arguments(self, parser):
        parser.add_argument("--yes", action="store_true", help="do it without asking")

    def handle(self, *args, yes: bool, **options):
        plan = []
        for version in ModelVersion.objects.filter(state=ModelVersion.State.RETIRED).order_by("pk"):
            images = ImageEmbedding.objects.filter(model_version=version).count()
            products = ProductEmbedding.objects.filter(model_version=version).count()
            indexes = hnsw_indexes(version.pk)
            if images or products or indexes:
                plan.append((version, images, products, indexes))
        if not plan:
            self.stdout.write("nothing to prune")
            return
        for version, images, products, indexes in plan:
            self.stdout.write(
                f"{version.version}: {images} photo rows, {products} product rows, {len(indexes)} HNSW indexes"
            )
        if not yes:
            if not sys.stdin.isatty():
                raise CommandError("not a terminal: pass --yes to prune")
            if input("Delete them? [y/N] ").strip().lower() not in {"y", "yes"}:
                self.stdout.write("nothing deleted")
                return
        quiet = options["verbosity"] == 0
        for version, images, products, _ in plan:
            # Indexes first: deleting rows from an index being dropped is wasted work.
            drop_hnsw_indexes(version.pk)
            with tqdm(total=images + products, unit="row", desc=version.version, disable=quiet) as bar:
                for table in TABLES.values():
                    self._delete_rows(table, version.pk, bar)
            self.stdout.write(f"pruned {version.version}")

    def _delete_rows(self, table: str, version_id: int, bar: tqdm) -> None:
        sql = (
            f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE model_version_id = %s LIMIT {DELETE_CHUNK})"
        )
        while True:
            with connection.cursor() as cursor:
                cursor.execute(sql, [version_id])
                deleted = cursor.rowcount
            bar.update(deleted)
            if deleted < DELETE_CHUNK:
                return
