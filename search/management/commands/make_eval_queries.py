"""A held-out query set from the demo catalog: shopper-style photos of products the
fusion never saw in training, their descriptions, and attribute queries.

    python manage.py make_eval_queries .cache/eval && python manage.py evaluate .cache/eval/queries.csv
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand
from PIL import Image
from tqdm import tqdm

from ml.data import giva
from ml.training.augment import shopper_view
from ml.training.data import all_attribute_queries, attribute_key, description_query, split_products

EVAL_SEED = 20261125  # not the training seed: these views are never seen in training


class Command(BaseCommand):
    help = "Write shopper-style query photos + queries.csv for the held-out demo products."

    def add_arguments(self, parser):
        parser.add_argument("out_dir", type=Path)
        parser.add_argument("--views", type=int, default=2, help="shopper photos per held-out product")
        parser.add_argument("--seed", type=int, default=EVAL_SEED)

    def handle(self, *args, out_dir: Path, views: int, seed: int, **options):
        products = giva.load_products()
        _, held_out = split_products(products)
        held_out_products = [p for p in products if p.sku in set(held_out)]
        (out_dir / "images").mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        rows = []
        for product in tqdm(held_out_products, unit="product", desc="views", disable=options["verbosity"] == 0):
            photo = Image.open(io.BytesIO(giva.product_image_bytes(product)))
            for view in range(views):
                name = f"images/{product.sku}-{view}.jpg"
                shopper_view(photo, rng).save(out_dir / name, quality=90)
                rows.append([name, "", product.sku])
                rows.append([name, description_query(product, rng), product.sku])
            rows.append(["", description_query(product, rng), product.sku])
        keys = {p.sku: attribute_key(p) for p in products}
        for query in all_attribute_queries(held_out_products):
            relevant = [sku for sku, key in keys.items() if query.matches(key)]
            rows.append(["", query.text, ";".join(relevant)])
        with open(out_dir / "queries.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["query_image", "query_text", "relevant_skus"])
            writer.writerows(rows)
        self.stdout.write(
            f"{len(rows)} queries for {len(held_out_products)} held-out products in {out_dir / 'queries.csv'}"
        )
