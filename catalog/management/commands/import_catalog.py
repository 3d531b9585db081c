from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.importing import CSV_COLUMNS, import_catalog_csv
from catalog.signals import bulk_change

# Exit status, so a script or a cron job can tell what happened (1: bad arguments or file).
SOME_ROWS_FAILED = 3
ALL_ROWS_FAILED = 4


class Command(BaseCommand):
    help = (
        f"Import products from a CSV with columns {','.join(CSV_COLUMNS)} (upsert by sku). "
        f"Exits 0 when every row imported, {SOME_ROWS_FAILED} when some rows failed, "
        f"{ALL_ROWS_FAILED} when every row failed, 1 when the file or the folder is unusable."
    )

    def add_arguments(self, parser):
        parser.add_argument("csv_file", type=Path)
        parser.add_argument("--images-root", type=Path, required=True, help="folder the `images` paths are relative to")

    def handle(self, *args, csv_file: Path, images_root: Path, **options):
        if not csv_file.is_file():
            raise CommandError(f"{csv_file} does not exist")
        if not images_root.is_dir():
            raise CommandError(f"--images-root {images_root} is not a folder")
        with open(csv_file, encoding="utf-8-sig") as handle:
            rows = max(0, sum(1 for _ in handle) - 1)
        # Indexing tasks of EMBED_IMAGE_BATCH_SIZE photos as rows commit, not one per row.
        quiet = options["verbosity"] == 0
        with bulk_change(), tqdm(total=rows, unit="row", desc="import", disable=quiet) as bar:
            try:
                summary = import_catalog_csv(csv_file, images_root, progress=bar.update)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        for line, sku, reason in summary.failed:
            self.stderr.write(f"line {line} (sku {sku or '?'}): {reason}")
        self.stdout.write(
            f"created {summary.created}, updated {summary.updated}, unchanged {summary.unchanged}, "
            f"failed {len(summary.failed)}"
        )
        if summary.failed:
            every = len(summary.failed) == summary.total
            which = "every row" if every else f"{len(summary.failed)} of {summary.total} rows"
            raise CommandError(
                f"{which} failed; see the lines above",
                returncode=ALL_ROWS_FAILED if every else SOME_ROWS_FAILED,
            )
