"""One query -> ranked products: encode, retrieve from HNSW (with filters), group, re-rank.

Retrieval reads two partial HNSW indexes of the active model version: photos (a product
with six photos is scored by its best one) and fused products (photos + text); a query with
words is then scored by the product vector alone (`ranking.similarity`). Filters
never silently shorten a result list: pgvector >= 0.8 keeps scanning the graph
(`hnsw.iterative_scan`); on older pgvector we over-fetch in proportion to the filter's
selectivity and fall back to an exact scan of the filtered subset when it is small or
the graph runs dry.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction

from catalog.choices import Gemstone, Metal, gemstone_from_text, metal_from_text
from catalog.models import Category, Product, ProductImage
from indexing.engine import active_version, model_for_version
from indexing.models import ModelVersion
from indexing.vector_index import TABLES, capabilities

from . import ranking

logger = logging.getLogger(__name__)

QUERY_CACHE_SECONDS = 24 * 3600
CATEGORY_NEIGHBOURS = 10
MAX_FETCH_ROUNDS = 4


@dataclass(frozen=True)
class Filters:
    category: str | None = None  # slug
    metal: str | None = None
    gemstone: str | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    in_stock: bool = False

    def is_empty(self) -> bool:
        return not any(
            [
                self.category,
                self.metal,
                self.gemstone,
                self.price_min is not None,
                self.price_max is not None,
                self.in_stock,
            ]
        )

    def sql(self) -> tuple[str, list]:
        """Conditions on `p` (catalog_product), always parameterised."""
        clauses, params = ["p.is_active"], []
        if self.category:
            clauses.append("p.category_id IN (SELECT id FROM catalog_category WHERE slug = %s)")
            params.append(self.category)
        if self.metal:
            clauses.append("p.metal = %s")
            params.append(self.metal)
        if self.gemstone:
            clauses.append("p.gemstone = %s")
            params.append(self.gemstone)
        if self.price_min is not None:
            clauses.append("p.price >= %s")
            params.append(self.price_min)
        if self.price_max is not None:
            clauses.append("p.price <= %s")
            params.append(self.price_max)
        if self.in_stock:
            clauses.append("p.stock > 0")
        return " AND ".join(clauses), params


@dataclass
class SearchQuery:
    image: bytes | None = None  # already validated upload bytes
    text: str = ""
    filters: Filters = field(default_factory=Filters)
    k: int = 20
    similar_to: int | None = None  # product id: "more like this"
    exact: bool = False  # bypass HNSW (evaluation, comparison)

    @property
    def kind(self) -> str:
        if self.similar_to is not None:
            return "similar"
        return "hybrid" if self.image and self.text else "image" if self.image else "text"


@dataclass
class SearchResult:
    product: Product
    score: float
    breakdown: dict[str, float]
    matched_image: ProductImage | None
    reason: str


@dataclass
class SearchResponse:
    results: list[SearchResult]
    took_ms: float
    model_version: str
    predicted_category: tuple[str, float] | None
    strategy: str
    timings: dict[str, float] = field(default_factory=dict)


class SearchUnavailable(RuntimeError):
    """No model version is serving yet (nothing indexed)."""


# --- encoding --------------------------------------------------------------------------


def _query_cache_key(version: str, image: bytes | None, text: str) -> str:
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(image or b"").digest())
    digest.update(text.strip().lower().encode())
    return f"qemb:{version}:{digest.hexdigest()}"


def encode_query(version: ModelVersion, image: bytes | None, text: str) -> np.ndarray:
    """Query vector in the shared space, cached in Redis by content hash + model version."""
    key = _query_cache_key(version.version, image, text)
    cached = cache.get(key)
    if cached is not None:
        return np.frombuffer(cached, dtype=np.float32)
    from ml.preprocess import load_image

    model = model_for_version(version)
    vector = model.encode_query(image=load_image(image) if image else None, text=text or None)
    vector = np.asarray(vector, dtype=np.float32)
    cache.set(key, vector.tobytes(), QUERY_CACHE_SECONDS)
    return vector


# --- retrieval ---------------------------------------------------------------------------


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


@dataclass
class Hit:
    product_id: int
    image_id: int | None
    similarity: float


def _nearest(
    kind: str,
    vector: str,
    version_id: int,
    filters: Filters,
    limit: int,
    *,
    exact: bool,
    exclude_product: int | None = None,
) -> list[Hit]:
    """Nearest rows of one index. `exact` scans the filtered subset without the graph."""
    table = TABLES[kind]
    image_column = "e.image_id" if kind == "image" else "NULL::bigint"
    where, params = filters.sql()
    if exclude_product is not None:
        where += " AND p.id <> %s"
        params.append(exclude_product)
    # The version is an integer literal so the planner matches the partial index.
    base = (
        f"SELECT e.product_id, {image_column} AS image_id, e.embedding <=> %s::vector AS distance "
        f"FROM {table} e JOIN catalog_product p ON p.id = e.product_id "
        f"WHERE e.model_version_id = {int(version_id)} AND {where}"
    )
    if exact:
        sql = f"WITH c AS MATERIALIZED ({base}) SELECT * FROM c ORDER BY distance LIMIT %s"
    else:
        sql = f"{base} ORDER BY e.embedding <=> %s::vector LIMIT %s"
    args = [vector, *params] + ([] if exact else [vector]) + [limit]
    with transaction.atomic(), connection.cursor() as cursor:
        if not exact:
            cursor.execute(
                "SELECT set_config('hnsw.ef_search', %s, true)", [str(max(settings.HNSW_EF_SEARCH, min(limit, 1000)))]
            )
            if capabilities().iterative_scan and not filters.is_empty():
                cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        cursor.execute(sql, args)
        rows = cursor.fetchall()
    return [Hit(product_id, image_id, 1.0 - float(distance)) for product_id, image_id, distance in rows]


def _matching_products(filters: Filters) -> int:
    where, params = filters.sql()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM catalog_product p WHERE {where}", params)
        return cursor.fetchone()[0]


def retrieve(
    vector: np.ndarray,
    version: ModelVersion,
    filters: Filters,
    k: int,
    *,
    exact: bool = False,
    exclude_product: int | None = None,
) -> tuple[dict[int, dict], str]:
    """Candidates grouped by product: {product_id: {"image": (sim, image_id), "product": sim}}."""
    literal = _vector_literal(vector)
    wanted = k * settings.SEARCH_CANDIDATE_FACTOR
    strategy = "exact" if exact else "hnsw"
    total_matching = None
    if not exact and not filters.is_empty():
        total_matching = _matching_products(filters)
        if total_matching <= settings.SEARCH_EXACT_SCAN_MAX_PRODUCTS:
            exact, strategy = True, "exact-filtered"
        elif capabilities().iterative_scan:
            strategy = "hnsw-iterative"
        else:
            total = max(1, Product.objects.filter(is_active=True).count())
            selectivity = max(total_matching / total, 1e-4)
            wanted = math.ceil(wanted / selectivity)
            strategy = "hnsw-overfetch"
    limit = wanted
    for _ in range(MAX_FETCH_ROUNDS):
        grouped: dict[int, dict] = {}
        for kind in ("image", "product"):
            for hit in _nearest(
                kind, literal, version.pk, filters, limit, exact=exact, exclude_product=exclude_product
            ):
                entry = grouped.setdefault(hit.product_id, {})
                if kind == "image":
                    if hit.similarity > entry.get("image", (-2.0, None))[0]:
                        entry["image"] = (hit.similarity, hit.image_id)
                else:
                    entry["product"] = hit.similarity
        if len(grouped) >= k or exact:
            return grouped, strategy
        if total_matching is None:
            total_matching = _matching_products(filters) - (1 if exclude_product else 0)
        if len(grouped) >= total_matching:
            return grouped, strategy
        limit *= 4
        if limit > 20 * wanted:  # the graph ran dry under this filter: scan the subset
            exact, strategy = True, strategy + "+exact"
    return grouped, strategy


# --- signals and re-ranking ------------------------------------------------------------


def _category_names() -> dict[str, str]:
    return {name.lower(): name for name in Category.objects.values_list("name", flat=True)}


def text_signals(text: str) -> dict:
    """What a typed query names: a category, a metal, a gemstone."""
    signals: dict = {}
    words = ranking.tokens(text)
    stems = {w[:-1] if w.endswith("s") else w for w in words}
    for lowered, name in _category_names().items():
        if lowered in words or lowered in stems:
            signals["category"] = {name: 1.0}
            break
    metal = metal_from_text(text)
    if metal != Metal.OTHER:
        signals["metal"] = metal
    gemstone = gemstone_from_text(text)
    if gemstone not in (Gemstone.OTHER, Gemstone.NONE):
        signals["gemstone"] = gemstone
    return signals


def predict_category(vector: np.ndarray, version: ModelVersion) -> dict[str, float]:
    """Category distribution from the nearest catalog photos, before any filter."""
    hits = _nearest("image", _vector_literal(vector), version.pk, Filters(), CATEGORY_NEIGHBOURS, exact=False)
    if not hits:
        return {}
    names = dict(Product.objects.filter(pk__in={h.product_id for h in hits}).values_list("pk", "category__name"))
    return ranking.predict_category([names[h.product_id] for h in hits], [h.similarity for h in hits])


def _exact_rescore(vector: np.ndarray, version: ModelVersion, grouped: dict[int, dict]) -> None:
    """Fill in the exact cosine of the side a candidate was not retrieved by.

    The cosine is computed in PostgreSQL: shipping ~100 512-d vectors as text and parsing
    them in Python cost more than the whole HNSW search (docs/performance.md)."""
    ids = list(grouped)
    if not ids:
        return
    literal = _vector_literal(vector)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT product_id, 1 - (embedding <=> %s::vector) FROM {TABLES['product']} "
            f"WHERE model_version_id = {int(version.pk)} AND product_id = ANY(%s)",
            [literal, ids],
        )
        for product_id, similarity in cursor.fetchall():
            grouped[product_id]["product"] = float(similarity)
        missing_image = [pid for pid in ids if "image" not in grouped[pid]]
        if missing_image:
            cursor.execute(
                "SELECT DISTINCT ON (product_id) product_id, image_id, 1 - (embedding <=> %s::vector) AS similarity "
                f"FROM {TABLES['image']} WHERE model_version_id = {int(version.pk)} AND product_id = ANY(%s) "
                "ORDER BY product_id, similarity DESC",
                [literal, missing_image],
            )
            for product_id, image_id, similarity in cursor.fetchall():
                grouped[product_id]["image"] = (float(similarity), image_id)


def _reason(result: ranking.RankedResult, product: Product, query: SearchQuery) -> str:
    parts = []
    b = result.breakdown
    if query.image:
        parts.append(f"looks {max(0.0, b['similarity']) * 100:.0f}% alike")
    elif query.kind == "similar":
        parts.append(f"{max(0.0, b['similarity']) * 100:.0f}% similar")
    else:
        parts.append(f"matches your words ({max(0.0, b['similarity']) * 100:.0f}%)")
    # Name the category only when the query is more likely than not to be one.
    if b.get("category", 0) >= 0.5 * settings.SEARCH_RANKING_WEIGHTS["category"] > 0:
        parts.append(f"a {product.category.name.lower()}")
    if b.get("metal", 0) > 0:
        parts.append(product.get_metal_display().lower())
    if b.get("gemstone", 0) > 0:
        parts.append(product.get_gemstone_display().lower())
    return ", ".join(parts)


def search(query: SearchQuery) -> SearchResponse:
    started = time.perf_counter()
    timings: dict[str, float] = {}
    version = active_version(create=False)
    if version is None:
        raise SearchUnavailable("Nothing is indexed yet: the catalog is still being embedded.")

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round((now - since) * 1000, 2)
        return now

    t = time.perf_counter()
    signal_kwargs: dict = {}
    if query.similar_to is not None:
        from indexing.models import ProductEmbedding

        row = (
            ProductEmbedding.objects.filter(product_id=query.similar_to, model_version=version)
            .values_list("embedding", flat=True)
            .first()
        )
        if row is None:
            return SearchResponse(
                [], round((time.perf_counter() - started) * 1000, 1), version.version, None, "none", timings
            )
        vector = np.asarray(row, dtype=np.float32)
        category = Product.objects.filter(pk=query.similar_to).values_list("category__name", flat=True).first()
        signal_kwargs["category"] = {category: 1.0} if category else {}
    else:
        vector = encode_query(version, query.image, query.text)
    t = lap("encode_ms", t)

    predicted = None
    if query.image:
        distribution = predict_category(vector, version)
        if distribution:
            predicted = next(iter(distribution.items()))
            signal_kwargs["category"] = distribution
    if query.text:
        from_text = text_signals(query.text)
        signal_kwargs.update({key: value for key, value in from_text.items() if key != "category" or not query.image})
        if "category" in from_text and query.image:
            signal_kwargs["category"] = from_text["category"]  # the shopper's words beat our guess
    t = lap("predict_ms", t)

    grouped, strategy = retrieve(
        vector, version, query.filters, query.k, exact=query.exact, exclude_product=query.similar_to
    )
    t = lap("retrieve_ms", t)
    _exact_rescore(vector, version, grouped)
    # Rank on plain values; build model objects (and their photos) for the k shown only.
    rows = Product.objects.filter(pk__in=list(grouped)).values_list(
        "pk", "category__name", "metal", "gemstone", "title", "description"
    )
    features = [
        ranking.CandidateFeatures(
            product_id=pid,
            image_similarity=grouped[pid]["image"][0] if "image" in grouped[pid] else None,
            product_similarity=grouped[pid].get("product"),
            category=category,
            metal=metal,
            gemstone=gemstone,
            text=f"{title} {description}",
        )
        for pid, category, metal, gemstone, title, description in rows
    ]
    signals = ranking.QuerySignals(
        tokens=ranking.tokens(query.text), photo_only=bool(query.image) and not query.text, **signal_kwargs
    )
    ranked = ranking.rank(features, signals, settings.SEARCH_RANKING_WEIGHTS, query.k)
    products = {
        p.pk: p
        for p in Product.objects.filter(pk__in=[r.product_id for r in ranked])
        .select_related("category")
        .prefetch_related("images")
    }
    images = {image.pk: image for p in products.values() for image in p.images.all()}
    results = []
    for result in ranked:
        product = products[result.product_id]
        image_id = grouped[result.product_id].get("image", (None, None))[1]
        results.append(
            SearchResult(
                product=product,
                score=result.score,
                breakdown=result.breakdown,
                matched_image=images.get(image_id) or product.primary_image,
                reason=_reason(result, product, query),
            )
        )
    lap("rank_ms", t)
    took = round((time.perf_counter() - started) * 1000, 1)
    logger.info(
        "search kind=%s k=%d strategy=%s results=%d took=%.1fms %s",
        query.kind,
        query.k,
        strategy,
        len(results),
        took,
        timings,
    )
    return SearchResponse(results, took, version.version, predicted, strategy, timings)


def warm_up() -> str:
    """Load the serving model and run one query through it, so the first shopper does
    not pay for model loading and lazy initialisation."""
    from PIL import Image

    from indexing.engine import load_search_model

    version = active_version(create=False)
    model = model_for_version(version) if version else load_search_model()
    model.encode_query(image=Image.new("RGB", (64, 64), "white"), text="gold ring")
    return model.version
