"""Remove stored photo files that no photo row names: what earlier releases left behind
(files were never deleted before), and copies of one photo stored under suffixed names."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.models import ProductImage
from catalog.photos import PHOTO_NAME, delete_file_if_unreferenced

logger = logging.getLogger(__name__)
# A file this young may belong to a transaction that has not committed yet.
DEFAULT_MIN_AGE_SECONDS = 3600


class Command(BaseCommand):
    help = "Report (--dry-run) or delete photo files under MEDIA_ROOT/products that no photo row references."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report what would be deleted; delete nothing")
        parser.add_argument(
            "--min-age",
            type=int,
            default=DEFAULT_MIN_AGE_SECONDS,
            help=f"leave files modified less than this many seconds ago (default {DEFAULT_MIN_AGE_SECONDS})",
        )

    def handle(self, *args, dry_run: bool, min_age: int, **options):
        try:
            root = Path(default_storage.path("products"))
        except NotImplementedError:
            raise CommandError("media_gc works on file-system storage only") from None
        files = sorted(path for path in root.rglob("*") if path.is_file()) if root.is_dir() else []
        referenced = set(ProductImage.objects.values_list("image", flat=True))
        media_root = Path(default_storage.path(""))
        now = time.time()
        orphans = young = unknown = freed = 0
        quiet = options["verbosity"] == 0
        for path in tqdm(files, unit="file", desc="media_gc", disable=quiet):
            name = path.relative_to(media_root).as_posix()
            if name in referenced:
                continue
            if not PHOTO_NAME.fullmatch(name):
                unknown += 1  # not a name this project writes: someone else's file, left alone
                self.stderr.write(f"not a photo name, left alone: {name}")
                continue
            if now - path.stat().st_mtime < min_age:
                young += 1
                continue
            size = path.stat().st_size
            if dry_run:
                orphans += 1
                freed += size
                self.stdout.write(f"orphan: {name} ({size} bytes)")
            elif delete_file_if_unreferenced(default_storage, name):  # re-checked under the photo's lock
                orphans += 1
                freed += size
                if options["verbosity"] > 1:
                    self.stdout.write(f"deleted: {name}")
        if not dry_run:
            for folder in sorted((p for p in root.glob("*") if p.is_dir()), reverse=True):
                if not any(folder.iterdir()):
                    folder.rmdir()
        missing = [name for name in referenced if name and not (media_root / name).is_file()]
        for name in sorted(missing):
            self.stderr.write(f"photo row without its file (upload it again): {name}")
        verb = "would delete" if dry_run else "deleted"
        summary = (
            f"{len(files)} files, {len(referenced)} referenced; {verb} {orphans} orphans ({freed / 1e6:.1f} MB); "
            f"{young} too recent to judge (under {min_age}s old); {unknown} unknown names left alone; "
            f"{len(missing)} photo rows without a file"
        )
        logger.info(summary)
        self.stdout.write(summary)
