"""Attribute-phrase query sets for `manage.py evaluate` (search.attribute_queries).

python manage.py make_attribute_queries .cache/eval-ood --csv ../shared/data/jewelry-dev/catalog.csv
python manage.py make_attribute_queries .cache/eval-demo        # the catalogue in the database
python manage.py evaluate .cache/eval-ood/attributes.csv --methods baseline,dense,lexical,hybrid
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from search import attribute_queries


class Command(BaseCommand):
    help = "Write attributes.csv and attributes-typo.csv: attribute queries with every matching product relevant."

    def add_arguments(self, parser):
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--csv", type=Path, help="a catalogue CSV in the import format (default: the database)")
        parser.add_argument("--seed", type=int, default=attribute_queries.TYPO_SEED, help="seed of the typos")

    def handle(self, *args, out_dir: Path, csv: Path | None, seed: int, **options):
        if csv is not None and not csv.is_file():
            raise CommandError(f"{csv} does not exist")
        products = attribute_queries.from_catalog_csv(csv) if csv else attribute_queries.from_database()
        if not products:
            raise CommandError("no products to build queries from")
        counts = attribute_queries.write_sets(out_dir, products, seed)
        for name, count in counts.items():
            self.stdout.write(f"{count} queries in {out_dir / name}")
