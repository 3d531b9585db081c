"""A synthetic catalog of N products with realistic vectors, bulk-loaded with COPY.

Vectors: every synthetic product is a mixture of two real demo products of the same
category (their fused vectors from the default model, `benchmarks/encode.py`), plus noise
drawn from the covariance of the real vectors (so it stays in the subspace the model
really uses) and a little isotropic noise, then L2-normalised. The noise scale puts a
synthetic product at cosine ~0.85 from its main parent: at 100K products the demo
catalog's 236 looks become dense neighbourhoods of near-duplicates, as in a real shop.
Attributes follow the main parent (category always; metal and gemstone 80 % of the time);
prices are a permutation of 100..100+N-1, so `price <= x` selects an exact share of the
catalog (the filtered benchmark's selectivities); 90 % are in stock.

One photo per product (file names are fake, nothing is on disk); the raw `features`
columns hold an 8-d placeholder (the real 1280-d / 384-d raw features are TOASTed out of
line and never read by search: `docs/scaling.md` counts their bytes separately).
Everything belongs to one ACTIVE ModelVersion whose version string is the real model's,
so the web app can serve queries against it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger("benchmarks.synthetic")

PLACEHOLDER_FEATURES = 8
NOISE = 0.6  # latent noise scale: cosine(product, main parent) ~ 0.85
ISOTROPIC_SHARE = 0.25
SEED = 20261125
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in Unix microseconds
CATEGORY_METAL = ["yellow_gold", "white_gold", "rose_gold", "two_tone_gold", "platinum", "silver"]
GEMSTONES = ["diamond", "pearl", "sapphire", "ruby", "emerald", "cubic_zirconia", "none", "none"]


@dataclass
class Base:
    skus: np.ndarray
    categories: np.ndarray
    image: np.ndarray  # (B, 512) fused image-only vectors
    product: np.ndarray  # (B, 512) fused photo + text vectors


def load_base(path) -> Base:
    data = np.load(path)
    return Base(data["skus"], data["categories"], data["image"], data["product"])


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class Generator:
    """Draws synthetic (image vector, product vector, parent) triples from the base."""

    def __init__(self, base: Base, seed: int = SEED) -> None:
        self.base = base
        self.rng = np.random.default_rng(seed)
        self.by_category = {c: np.flatnonzero(base.categories == c) for c in np.unique(base.categories)}
        self.factors = {name: self._factor(getattr(base, name)) for name in ("image", "product")}

    @staticmethod
    def _factor(vectors: np.ndarray) -> np.ndarray:
        centred = vectors - vectors.mean(0)
        # rows of `vt` scaled by singular values: z @ factor ~ N(0, cov), unit expected norm
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        factor = (s[:, None] * vt) / np.sqrt(len(vectors) - 1)
        return factor / np.sqrt((s**2).sum() / (len(vectors) - 1))

    def draw(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        base, rng = self.base, self.rng
        parents = rng.integers(0, len(base.skus), n)
        partners = np.empty(n, dtype=np.int64)
        categories = base.categories[parents]
        for category, members in self.by_category.items():
            mask = categories == category
            partners[mask] = members[rng.integers(0, len(members), int(mask.sum()))]
        alpha = rng.uniform(0.6, 1.0, n)[:, None].astype(np.float32)
        latent = rng.standard_normal((n, self.factors["image"].shape[0])).astype(np.float32)
        iso = rng.standard_normal((n, base.image.shape[1])).astype(np.float32) / np.sqrt(base.image.shape[1])
        out = []
        for name in ("image", "product"):
            vectors = getattr(base, name)
            noise = (1 - ISOTROPIC_SHARE) * (latent @ self.factors[name]) + ISOTROPIC_SHARE * iso
            mixed = alpha * vectors[parents] + (1 - alpha) * vectors[partners]
            mixed = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
            out.append(_normalise(mixed + NOISE * noise))
        return out[0], out[1], parents


# ---------------------------------------------------------------- COPY, binary


def _vector_fields(dim: int) -> list:
    return [("len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("values", ">f4", (dim,))]


def binary_copy_rows(columns: list[tuple[str, str, np.ndarray]]) -> bytes:
    """PostgreSQL COPY BINARY payload from column arrays: ("int8" | "timestamptz" | "vector")."""
    n = len(columns[0][2])
    fields: list = [("nfields", ">i2")]
    for index, (kind, _, values) in enumerate(columns):
        if kind == "vector":
            fields.append((f"c{index}", _vector_fields(values.shape[1])))
        else:
            fields.append((f"c{index}", [("len", ">i4"), ("value", ">i8")]))
    rows = np.zeros(n, dtype=np.dtype(fields))
    rows["nfields"] = len(columns)
    for index, (kind, _, values) in enumerate(columns):
        column = rows[f"c{index}"]
        if kind == "vector":
            dim = values.shape[1]
            column["len"] = 4 + 4 * dim
            column["dim"] = dim
            column["values"] = values
        else:
            column["len"] = 8
            column["value"] = values
    header = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
    return header + rows.tobytes() + b"\xff\xff"


def _copy_binary(cursor, table: str, columns: list[tuple[str, str, np.ndarray]], chunk: int = 20_000) -> None:
    names = ", ".join(name for _, name, _ in columns)
    with cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        n = len(columns[0][2])
        payload = binary_copy_rows(columns)
        header, body = payload[:19], payload[19:-2]
        row_bytes = len(body) // n if n else 0
        copy.write(header)
        for start in range(0, n, chunk):
            copy.write(body[start * row_bytes : min(n, start + chunk) * row_bytes])
        copy.write(b"\xff\xff")


def _copy_text(cursor, table: str, names: list[str], lines) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        buffer = []
        for line in lines:
            buffer.append(line)
            if len(buffer) >= 20_000:
                copy.write("".join(buffer))
                buffer = []
        if buffer:
            copy.write("".join(buffer))


# ---------------------------------------------------------------- the catalog


@dataclass
class Catalog:
    version_id: int
    version: str
    products: int
    image: np.ndarray  # (N, 512) in product id order (ids 1..N)
    product: np.ndarray
    parents: np.ndarray
    load_s: float
    reused: bool


def _now_us() -> int:
    return int(time.time() * 1_000_000) - PG_EPOCH_US


def load_catalog(base: Base, n: int, version: str, weights: dict, model_name: str, *, reuse: bool = True) -> Catalog:
    """TRUNCATE and COPY n synthetic products into the bench database (or reuse an identical load)."""
    import json

    from django.db import connection

    generator = Generator(base)
    started = time.perf_counter()
    image, product, parents = generator.draw(n)
    fingerprint = hashlib.sha256(image[:64].tobytes() + product[-64:].tobytes()).hexdigest()[:16]
    marker = f"bench:{n}:{fingerprint}"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, weights->>'bench' FROM indexing_modelversion WHERE version = %s AND state = 'active'", [version]
        )
        row = cursor.fetchone()
        if reuse and row and row[1] == marker:
            logger.info("reusing the loaded synthetic catalog (%d products)", n)
            return Catalog(row[0], version, n, image, product, parents, 0.0, True)
    logger.info("loading %d synthetic products with COPY", n)
    now = _now_us()
    categories = sorted(set(base.categories.tolist()))
    ids = np.arange(1, n + 1, dtype=np.int64)
    rng = np.random.default_rng(SEED + 1)
    prices = 100 + rng.permutation(n)
    in_stock = rng.random(n) < 0.9
    parent_metal = rng.integers(0, len(CATEGORY_METAL), len(base.skus))
    parent_gem = rng.integers(0, len(GEMSTONES), len(base.skus))
    keep = rng.random(n) < 0.8
    metals = np.where(keep, parent_metal[parents], rng.integers(0, len(CATEGORY_METAL), n))
    gems = np.where(keep, parent_gem[parents], rng.integers(0, len(GEMSTONES), n))
    category_of = base.categories[parents]
    with connection.cursor() as cursor:
        # Vector indexes left by the last run would be filled row by row during the COPY
        # (a new version gets id 1 again): drop them, the caller builds them afterwards.
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('indexing_imageembedding', "
            "'indexing_productembedding') AND indexdef ILIKE '%USING hnsw%'"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        cursor.execute(
            "TRUNCATE indexing_imageembedding, indexing_productembedding, catalog_productimage, catalog_product, "
            "catalog_category, indexing_modelversion RESTART IDENTITY CASCADE"
        )
        for index, name in enumerate(categories, start=1):
            cursor.execute(
                "INSERT INTO catalog_category (id, name, slug) VALUES (%s, %s, %s)", [index, name, name.lower()]
            )
        category_id = {name: index for index, name in enumerate(categories, start=1)}
        cursor.execute(
            "INSERT INTO indexing_modelversion (version, model_name, dim, weights, state, created_at, activated_at) "
            "VALUES (%s, %s, 512, %s, 'active', now(), now()) RETURNING id",
            [version, model_name, json.dumps({**weights, "bench": marker})],
        )
        version_id = cursor.fetchone()[0]
        stamp = "2026-01-01 00:00:00+00"
        product_columns = [
            "id",
            "embedding_dirty",
            "embedding_marked_at",
            "embedding_error",
            "sku",
            "title",
            "description",
            "metal",
            "metal_text",
            "gemstone",
            "gemstone_text",
            "price",
            "currency",
            "stock",
            "is_active",
            "created_at",
            "updated_at",
            "category_id",
        ]
        _copy_text(
            cursor,
            "catalog_product",
            product_columns,
            (
                f"{i}\tf\t{stamp}\t\tSYN-{i:07d}\t{category_of[i - 1]} no. {i}\t"
                f"A synthetic {category_of[i - 1].lower()}\t"
                f"{CATEGORY_METAL[metals[i - 1]]}\t\t{GEMSTONES[gems[i - 1]]}\t\t{prices[i - 1]}.00\tINR\t"
                f"{3 if in_stock[i - 1] else 0}\tt\t{stamp}\t{stamp}\t{category_id[category_of[i - 1]]}\n"
                for i in range(1, n + 1)
            ),
        )
        image_columns = [
            "id",
            "embedding_dirty",
            "embedding_marked_at",
            "embedding_error",
            "image",
            "position",
            "width",
            "height",
            "format",
            "content_hash",
            "alt_text",
            "created_at",
            "product_id",
        ]

        def image_line(i: int) -> str:
            digest = hashlib.blake2b(i.to_bytes(8, "little"), digest_size=32).hexdigest()
            return (
                f"{i}\tf\t{stamp}\t\tproducts/{digest[:2]}/{digest}.jpg\t0\t850\t850\tJPEG\t{digest}\t\t{stamp}\t{i}\n"
            )

        _copy_text(cursor, "catalog_productimage", image_columns, (image_line(i) for i in range(1, n + 1)))
        placeholder = np.zeros((n, PLACEHOLDER_FEATURES), dtype=np.float32)
        stamps = np.full(n, now, dtype=np.int64)
        versions = np.full(n, version_id, dtype=np.int64)
        _copy_binary(
            cursor,
            "indexing_imageembedding",
            [
                ("int8", "id", ids),
                ("vector", "features", placeholder),
                ("vector", "embedding", image),
                ("timestamptz", "updated_at", stamps),
                ("int8", "image_id", ids),
                ("int8", "product_id", ids),
                ("int8", "model_version_id", versions),
            ],
        )
        _copy_binary(
            cursor,
            "indexing_productembedding",
            [
                ("int8", "id", ids),
                ("vector", "text_features", placeholder),
                ("vector", "embedding", product),
                ("timestamptz", "updated_at", stamps),
                ("int8", "product_id", ids),
                ("int8", "model_version_id", versions),
            ],
        )
        for table in (
            "catalog_category",
            "catalog_product",
            "catalog_productimage",
            "indexing_imageembedding",
            "indexing_productembedding",
            "indexing_modelversion",
        ):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cursor.execute("ANALYZE")
    load_s = time.perf_counter() - started
    logger.info("loaded %d products in %.1fs", n, load_s)
    return Catalog(version_id, version, n, image, product, parents, load_s, False)


def add_subset_version(catalog: Catalog, n: int, name: str) -> int:
    """A RETIRED version holding copies of the first n products' vectors: its own partial
    index, so a smaller catalog is measured in the same database."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM indexing_modelversion WHERE version = %s", [name])
        row = cursor.fetchone()
        if row:
            cursor.execute("SELECT count(*) FROM indexing_productembedding WHERE model_version_id = %s", [row[0]])
            if cursor.fetchone()[0] == n:
                return row[0]
            cursor.execute("DELETE FROM indexing_modelversion WHERE id = %s", [row[0]])
        cursor.execute(
            "INSERT INTO indexing_modelversion (version, model_name, dim, weights, state, created_at) "
            "VALUES (%s, 'bench-subset', 512, '{}', 'retired', now()) RETURNING id",
            [name],
        )
        version_id = cursor.fetchone()[0]
        for table, key in (
            ("indexing_imageembedding", "image_id, product_id"),
            ("indexing_productembedding", "product_id"),
        ):
            feature = "features" if table == "indexing_imageembedding" else "text_features"
            cursor.execute(
                f"INSERT INTO {table} ({key}, {feature}, embedding, updated_at, model_version_id) "
                f"SELECT {key}, {feature}, embedding, updated_at, %s FROM {table} "
                f"WHERE model_version_id = %s AND product_id <= %s",
                [version_id, catalog.version_id, n],
            )
        cursor.execute("ANALYZE indexing_imageembedding")
        cursor.execute("ANALYZE indexing_productembedding")
    return version_id
