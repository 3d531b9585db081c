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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.core.cache import caches
from django.db import connection, transaction
from django.db.models import Field

from catalog import searchable
from catalog.models import Category, Product, ProductImage
from indexing.engine import active_version, model_for_version
from indexing.models import ModelVersion
from indexing.vector_index import TABLES, capabilities
from ml import scoring

from . import ranking

logger = logging.getLogger(__name__)

QUERY_CACHE_SECONDS = 24 * 3600
# The query cache (settings.CACHES alias): its own Redis, never the broker's.
QUERY_CACHE = "query"
CATEGORY_NEIGHBOURS = 10
# Filtered retrieval on pgvector without iterative scans: over-fetch rounds, each this many
# times larger, until this many times the first fetch, then an exact scan of the subset.
MAX_FETCH_ROUNDS = 4
FETCH_GROWTH = 4
MAX_OVERFETCH = 20
# The graph is walked with at most this ef_search (pgvector's own ceiling is 1000).
MAX_EF_SEARCH = 1000
# Selectivity is never taken below this, so an almost-empty filter cannot ask for the world.
MIN_SELECTIVITY = 1e-4


def _is_set(value: Any) -> bool:
    """A minimum price of 0 is a filter too: 0 == False, so not `value in (None, "", False)`."""
    return value is not None and value is not False and value != ""


@dataclass(frozen=True, init=False)
class Filters:
    """The shopper's filters, by the parameter names of the declaration
    (catalog/searchable.py): ``Filters(category="ring", price_max=Decimal(500))``."""

    items: tuple[tuple[str, Any], ...]

    def __init__(self, **values: Any) -> None:
        known = searchable.filter_params()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TypeError(f"unknown filters {unknown}: the declared ones are {list(known)}")
        kept = tuple((name, values[name]) for name in known if _is_set(values.get(name)))
        object.__setattr__(self, "items", kept)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Filters:
        """The declared filters found in cleaned form or serializer data."""
        return cls(**{name: data.get(name) for name in searchable.filter_params()})

    def get(self, name: str) -> Any:
        return dict(self.items).get(name)

    def is_empty(self) -> bool:
        return not self.items

    def sql(self) -> tuple[str, list]:
        """Conditions on `p` (catalog_product), always parameterised."""
        clauses, params = ["p.is_active"], []
        values = dict(self.items)
        for attribute in searchable.filters():
            for clause, args in _conditions(attribute, values):
                clauses.append(clause)
                params.extend(args)
        return " AND ".join(clauses), params


def _column(attribute: searchable.Attribute) -> str:
    field = Product._meta.get_field(attribute.name)
    assert isinstance(field, Field)  # a declared filter is one of the product's own columns
    assert field.column is not None
    return "p." + field.column


def _conditions(attribute: searchable.Attribute, values: Mapping[str, Any]) -> Iterator[tuple[str, list]]:
    """The SQL of one declared filter, for the values given (nothing when it is not set)."""
    kind = attribute.kind
    if kind is searchable.FilterKind.RANGE:
        low, high = (values.get(param) for param in attribute.params)
        if low is not None:
            yield f"{_column(attribute)} >= %s", [low]
        if high is not None:
            yield f"{_column(attribute)} <= %s", [high]
        return
    value = values.get(attribute.name)
    if value is None:
        return
    if kind is searchable.FilterKind.CATEGORY:
        yield "p.category_id IN (SELECT id FROM catalog_category WHERE slug = %s)", [value]
    elif kind is searchable.FilterKind.FLAG:
        yield attribute.condition, []
    else:
        yield f"{_column(attribute)} = %s", [value]


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
    cached = caches[QUERY_CACHE].get(key)
    if cached is not None:
        return np.frombuffer(cached, dtype=np.float32)
    from ml.preprocess import load_image

    model = model_for_version(version)
    side = int(model.config["preprocess"]["resize"])  # a JPEG is decoded at the scale the model reads
    vector = model.encode_query(image=load_image(image, draft=(side, side)) if image else None, text=text or None)
    vector = np.asarray(vector, dtype=np.float32)
    caches[QUERY_CACHE].set(key, vector.tobytes(), QUERY_CACHE_SECONDS)
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
                "SELECT set_config('hnsw.ef_search', %s, true)",
                [str(max(settings.HNSW_EF_SEARCH, min(limit, MAX_EF_SEARCH)))],
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
            selectivity = max(total_matching / total, MIN_SELECTIVITY)
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
        limit *= FETCH_GROWTH
        if limit > MAX_OVERFETCH * wanted:  # the graph ran dry under this filter: scan the subset
            exact, strategy = True, strategy + "+exact"
    return grouped, strategy


# --- signals and re-ranking ------------------------------------------------------------


def _category_in_words(words: frozenset[str]) -> str | None:
    """The shop's category the words name ("rings" -> Ring), if any."""
    for name in Category.objects.values_list("name", flat=True):
        name_words = set(scoring.words(name))
        if name_words and name_words <= words:
            return name
    return None


def text_signals(text: str) -> dict[str, dict[str, float]]:
    """What a typed query names, per declared attribute: {"metal": {"rose_gold": 1.0}, ...}."""
    signals: dict[str, dict[str, float]] = {}
    words = scoring.token_set(text)
    for attribute in searchable.boosted():
        if attribute.kind is searchable.FilterKind.CATEGORY:
            value = _category_in_words(words)
        else:
            value = attribute.from_words(text) if attribute.from_words else None
        if value:
            signals[attribute.name] = {value: 1.0}
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
    for attribute in searchable.boosted():
        boost = b.get(attribute.name, 0)
        if attribute.kind is searchable.FilterKind.CATEGORY:
            # Name the category only when the query is more likely than not to be one.
            if boost >= 0.5 * attribute.boost > 0:
                parts.append(f"a {product.category.name.lower()}")
        elif boost > 0:
            parts.append(attribute.choice_label(getattr(product, attribute.name)).lower())
    return ", ".join(parts)


def ranking_weights() -> dict[str, float]:
    """Similarity and text-match weights (settings) plus each declared attribute's boost."""
    return {**{a.name: a.boost for a in searchable.boosted()}, **settings.SEARCH_RANKING_WEIGHTS}


class _Stopwatch:
    """Milliseconds per named stage of one search."""

    def __init__(self) -> None:
        self.started = self.mark = time.perf_counter()
        self.timings: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round((now - self.mark) * 1000, 2)
        self.mark = now

    def total_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 1)


def _similar_to_vector(query: SearchQuery, version: ModelVersion) -> tuple[np.ndarray | None, dict]:
    """ "More like this": the product's own fused vector, and its category as the signal."""
    from indexing.models import ProductEmbedding

    assert query.similar_to is not None  # search() asks only for a "more like this" query
    row = (
        ProductEmbedding.objects.filter(product_id=query.similar_to, model_version=version)
        .values_list("embedding", flat=True)
        .first()
    )
    if row is None:
        return None, {}
    category = Product.objects.filter(pk=query.similar_to).values_list("category__name", flat=True).first()
    return np.asarray(row, dtype=np.float32), {"category": {category: 1.0}} if category else {}


def _query_signals(
    query: SearchQuery, vector: np.ndarray, version: ModelVersion, signals: dict
) -> tuple[dict, tuple[str, float] | None]:
    """What the photo looks like (category) and what the words name; the words win."""
    predicted = None
    if query.image:
        distribution = predict_category(vector, version)
        if distribution:
            predicted = next(iter(distribution.items()))
            signals["category"] = distribution
    if query.text:
        signals.update(text_signals(query.text))  # the shopper's words beat our guess
    return signals, predicted


def _candidates(grouped: dict[int, dict]) -> list[ranking.CandidateFeatures]:
    """Plain values to rank on: similarities and the declared attributes' values."""
    paths = {
        a.name: "category__name" if a.kind is searchable.FilterKind.CATEGORY else a.name for a in searchable.boosted()
    }
    rows = Product.objects.filter(pk__in=list(grouped)).values("pk", "title", "description", *paths.values())
    return [
        ranking.CandidateFeatures(
            product_id=row["pk"],
            image_similarity=grouped[row["pk"]]["image"][0] if "image" in grouped[row["pk"]] else None,
            product_similarity=grouped[row["pk"]].get("product"),
            attributes={name: row[path] for name, path in paths.items()},
            text=f"{row['title']} {row['description']}",
        )
        for row in rows
    ]


def _results(ranked: list[ranking.RankedResult], grouped: dict[int, dict], query: SearchQuery) -> list[SearchResult]:
    """Model objects (and their photos) for the k shown only."""
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
    return results


def search(query: SearchQuery) -> SearchResponse:
    """Encode, predict and read the words, retrieve, rescore exactly, rank, build results."""
    clock = _Stopwatch()
    version = active_version(create=False)
    if version is None:
        raise SearchUnavailable("Nothing is indexed yet: the catalog is still being embedded.")
    signals: dict = {}
    if query.similar_to is not None:
        vector, signals = _similar_to_vector(query, version)
        if vector is None:
            return SearchResponse([], clock.total_ms(), version.version, None, "none", clock.timings)
    else:
        vector = encode_query(version, query.image, query.text)
    clock.lap("encode_ms")
    signals, predicted = _query_signals(query, vector, version, signals)
    clock.lap("predict_ms")
    grouped, strategy = retrieve(
        vector, version, query.filters, query.k, exact=query.exact, exclude_product=query.similar_to
    )
    clock.lap("retrieve_ms")
    _exact_rescore(vector, version, grouped)
    query_signals = ranking.QuerySignals(
        attributes=signals, tokens=scoring.token_set(query.text), photo_only=bool(query.image) and not query.text
    )
    ranked = ranking.rank(_candidates(grouped), query_signals, ranking_weights(), query.k)
    results = _results(ranked, grouped, query)
    clock.lap("rank_ms")
    took = clock.total_ms()
    logger.info(
        "search kind=%s k=%d strategy=%s results=%d took=%.1fms %s",
        query.kind,
        query.k,
        strategy,
        len(results),
        took,
        clock.timings,
    )
    return SearchResponse(results, took, version.version, predicted, strategy, clock.timings)


def warm_up() -> str:
    """Load the serving model and run one query through it, so the first shopper does
    not pay for model loading and lazy initialisation."""
    from PIL import Image

    from indexing.engine import load_search_model

    version = active_version(create=False)
    model = model_for_version(version) if version else load_search_model()
    model.encode_query(image=Image.new("RGB", (64, 64), "white"), text="gold ring")
    return model.version
