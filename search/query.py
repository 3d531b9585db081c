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

from . import facets as facet_counts
from . import lexical, ranking
from .understanding import Understood, Vocabulary, understand, words

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
# The "why" line names a cosine by these bands, never as a number.
CLOSENESS_VERY = 0.9
CLOSENESS_CLOSE = 0.75


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
    # False when nothing in the catalogue matches the words (no word of the catalogue's
    # vocabulary, nothing close in meaning): the results are then empty, not the nearest.
    matched: bool = True
    understood: Understood | None = None
    facets: dict[str, list[dict]] = field(default_factory=dict)
    total_matching: int | None = None  # the matching set under the filters

    @property
    def corrected_text(self) -> str | None:
        """The query as searched when a typo was corrected ("showing results for ...")."""
        if self.understood is None or not self.understood.corrections:
            return None
        return self.understood.searched


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


def _closeness(similarity: float) -> str:
    """A cosine in words: its scale means nothing to a shopper, so never a percentage."""
    if similarity >= CLOSENESS_VERY:
        return "very close"
    if similarity >= CLOSENESS_CLOSE:
        return "close"
    return "somewhat close"


def _reason(result: ranking.RankedResult, product: Product, query: SearchQuery) -> str:
    """Photo-only and "more like this": "looks close to your photo; same category and metal"."""
    b = result.breakdown
    parts = [f"looks {_closeness(b['similarity'])} to {'your photo' if query.image else 'this piece'}"]
    same = []
    for attribute in searchable.boosted():
        boost = b.get(attribute.name, 0)
        # Name the category only when the query is more likely than not to be one.
        if (boost >= 0.5 * attribute.boost > 0) if attribute.kind is searchable.FilterKind.CATEGORY else boost > 0:
            same.append(attribute.label.lower())
    if same:
        parts.append("same " + (" and ".join([", ".join(same[:-1]), same[-1]]) if len(same) > 1 else same[0]))
    return "; ".join(parts)


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


def _results(
    ranked: list[ranking.RankedResult], grouped: dict[int, dict], query: SearchQuery, understood: Understood | None
) -> list[SearchResult]:
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
        reason = (
            _reason_words(result, product, understood, bool(query.image))
            if understood is not None
            else _reason(result, product, query)
        )
        results.append(
            SearchResult(
                product=product,
                score=result.score,
                breakdown=result.breakdown,
                matched_image=images.get(image_id) or product.primary_image,
                reason=reason,
            )
        )
    return results


# --- queries with words: understanding, full text, fusion -------------------------------------


def load_vocabulary() -> Vocabulary:
    """The catalogue's categories, the merchants' synonyms and the shop's currency, read for
    each query (three small queries), so an admin edit applies from the next search on."""
    from django.db.models import Count

    from .models import Synonym

    categories: dict[str, str] = {}
    names: dict[str, str] = {}
    for slug, name in Category.objects.values_list("slug", "name"):
        names[slug] = name
        for form in {slug.lower(), " ".join(words(name))}:
            categories[form] = slug
    synonyms = {
        " ".join(words(phrase)): " ".join(words(means))
        for phrase, means in Synonym.objects.filter(is_active=True).values_list("phrase", "means")
    }
    currency = (
        Product.objects.filter(is_active=True)
        .values("currency")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("currency", flat=True)
        .first()
    )
    return Vocabulary(categories=categories, category_names=names, synonyms=synonyms, currency=currency or "INR")


def understand_query(text: str) -> Understood:
    """Typo correction against the catalogue's own words, then the parse."""
    vocabulary = load_vocabulary()
    protected = {w for phrase in [*vocabulary.synonyms, *vocabulary.categories] for w in phrase.split()}
    corrections = lexical.correct(words(text), protected)
    return understand(text, vocabulary, corrections)


def _intent(understood: Understood) -> ranking.Intent:
    """The parse as ranking reads it; a declared attribute the jewelry vocabulary does not
    know is read by the declaration's own `from_words`."""
    credits = understood.attribute_credits()
    for attribute in searchable.boosted():
        if attribute.name not in credits and attribute.from_words and attribute.name not in ("metal", "gemstone"):
            value = attribute.from_words(understood.searched)
            if value:
                credits[attribute.name] = {value: 1.0}
    return ranking.Intent(
        attributes=credits,
        shape=understood.shape,
        price_min=float(understood.price_min) if understood.price_min is not None else None,
        price_max=float(understood.price_max) if understood.price_max is not None else None,
        groups=len(understood.terms),
    )


def _product_gemstones(gemstone: str, gemstone_text: str) -> frozenset[str]:
    """The product's stone and every stone its merchant text lists ("pearl, cubic zirconia")."""
    from catalog.choices import Gemstone, gemstone_from_text

    stones = {gemstone}
    for part in (gemstone_text or "").split(","):
        stone = gemstone_from_text(part)
        if stone not in (Gemstone.OTHER, Gemstone.NONE):
            stones.add(stone)
    if len(stones) > 1:
        stones.discard(Gemstone.NONE)
    return frozenset(stones)


def _hybrid_candidates(
    query: SearchQuery, grouped: dict[int, dict], hits: dict[int, lexical.LexicalHit]
) -> list[ranking.HybridCandidate]:
    """Both sides' candidates with their two ranks. For words only, a candidate outside the
    matching set (no word found, not close enough in meaning) is dropped: it is what the
    facets count, and what lets "laptop" answer nothing."""
    photo = bool(query.image)
    declared = [a for a in searchable.boosted() if a.name not in ("category", "gemstone")]
    rows = Product.objects.filter(pk__in=list(grouped)).values(
        "pk",
        "category__slug",
        "gemstone",
        "gemstone_text",
        "title",
        "description",
        "price",
        *(a.name for a in declared),
    )
    similarity = {
        pid: ranking.similarity(_stub(entry), photo_only=False) if entry else -1.0 for pid, entry in grouped.items()
    }
    dense_order = sorted((pid for pid in grouped if similarity[pid] > -1.0), key=lambda pid: (-similarity[pid], pid))
    dense_rank = {pid: i for i, pid in enumerate(dense_order, start=1)}
    lexical_rank = {pid: i for i, pid in enumerate(hits, start=1)}
    candidates = []
    for row in rows:
        pid = row["pk"]
        if not photo and pid not in hits and similarity[pid] < settings.SEARCH_MATCH_MIN_SIMILARITY:
            continue
        attributes = {a.name: frozenset([str(row[a.name])]) for a in declared}
        attributes["category"] = frozenset([row["category__slug"]])
        attributes["gemstone"] = _product_gemstones(row["gemstone"], row["gemstone_text"])
        candidates.append(
            ranking.HybridCandidate(
                product_id=pid,
                dense_rank=dense_rank.get(pid),
                lexical_rank=lexical_rank.get(pid),
                groups_matched=hits[pid].groups_matched if pid in hits else 0,
                similarity=similarity[pid],
                attributes=attributes,
                text=f"{row['title']} {row['description']}",
                price=float(row["price"]) if row["price"] is not None else None,
            )
        )
    return candidates


def _stub(entry: dict) -> ranking.CandidateFeatures:
    return ranking.CandidateFeatures(
        product_id=0,
        image_similarity=entry["image"][0] if "image" in entry else None,
        product_similarity=entry.get("product"),
        attributes={},
        text="",
    )


def _words_found(understood: Understood, text: str) -> list[str]:
    """The query's words (or an alternative of each) found in a text, plural-insensitively."""
    found_tokens = {scoring.singular(w) for w in words(text)}
    found = []
    for group in understood.terms:
        for alternative in group:
            if all(scoring.singular(w) in found_tokens for w in alternative.split()):
                found.append(alternative)
                break
    return found


def _reason_words(result: ranking.RankedResult, product: Product, understood: Understood, photo: bool) -> str:
    """What matched, in words: "title has: yellow gold, sapphire; is a necklace, yellow gold"."""
    parts = []
    if photo:
        parts.append(f"looks {_closeness(result.breakdown['similarity'])} to your photo")
    in_title = _words_found(understood, product.title)
    if in_title:
        parts.append("title has: " + ", ".join(in_title))
    else:
        described = _words_found(understood, f"{product.description} {product.gemstone_text} {product.metal_text}")
        if described:
            parts.append("description has: " + ", ".join(described))
    b = result.breakdown
    named = []
    if b.get("category", 0) > 0:
        named.append(f"a {product.category.name.lower()}")
    if b.get("metal", 0) > 0:
        named.append(product.get_metal_display().lower())
    if b.get("gemstone", 0) > 0:
        named.append("no stone" if understood.gemstone == "none" else str(understood.gemstone).replace("_", " "))
    if b.get("price", 0) > 0:
        named.append("in your price range")
    if named:
        parts.append("is " + ", ".join(named))
    if not parts:
        parts.append("close in meaning to your words")
    return "; ".join(parts)


def _rank_words(
    query: SearchQuery, version: ModelVersion, vector: np.ndarray, understood: Understood, method: str, signals: dict
) -> tuple[list[ranking.RankedResult], dict[int, dict], str]:
    """Candidates from HNSW and the full-text index (`method` "lexical": full text only, for
    the side-by-side evaluation), fused and boosted by the intent."""
    grouped: dict[int, dict]
    if method == "lexical":
        grouped, strategy = {}, "fulltext"
    else:
        grouped, strategy = retrieve(vector, version, query.filters, query.k, exact=query.exact)
        strategy += "+fulltext"
    where, params = query.filters.sql()
    found = lexical.lexical_candidates(understood.terms, where, params, query.k * settings.SEARCH_CANDIDATE_FACTOR)
    hits = {hit.product_id: hit for hit in found}
    for pid in hits:
        grouped.setdefault(pid, {})
    if method == "lexical":
        for pid in grouped:
            grouped[pid] = {}  # no dense order
    else:
        _exact_rescore(vector, version, grouped)
    if query.image:
        text_names = text_signals(understood.searched)
        photo_signals = {**signals, **text_names}  # the shopper's words beat the photo's guess
        query_signals = ranking.QuerySignals(
            attributes=photo_signals, tokens=scoring.token_set(understood.searched), photo_only=False
        )
        lexical_rank = {pid: i for i, pid in enumerate(hits, start=1)}
        ranked = ranking.rank_photo_and_words(
            _candidates(grouped),
            query_signals,
            ranking_weights(),
            lexical_rank,
            settings.SEARCH_HYBRID_WEIGHTS["photo_text"],
            query.k,
        )
        return ranked, grouped, strategy
    weights = settings.SEARCH_HYBRID_WEIGHTS["text"]
    ranked = ranking.rank_hybrid(_hybrid_candidates(query, grouped, hits), _intent(understood), weights, query.k)
    return ranked, grouped, strategy


def _count_facets(query: SearchQuery, version: ModelVersion, vector: np.ndarray, response: SearchResponse) -> None:
    understood = response.understood
    words_only = understood is not None and not query.image
    counted = facet_counts.count(
        query.filters,
        fulltext_groups=understood.terms if understood is not None and words_only else None,
        vector=_vector_literal(vector) if words_only else None,
        version_id=version.pk,
    )
    response.facets, response.total_matching = counted.facets, counted.total
    response.matched = counted.unfiltered > 0
    if not response.matched:
        response.results = []


def search(query: SearchQuery, *, method: str = "hybrid") -> SearchResponse:
    """Read the words, encode, retrieve (HNSW, and full text for words), rank, count facets.

    `method` is for the side-by-side evaluation only: "dense" is the ranking before full
    text (HNSW + the declared attributes' small boosts), "lexical" full text + intent alone."""
    clock = _Stopwatch()
    version = active_version(create=False)
    if version is None:
        raise SearchUnavailable("Nothing is indexed yet: the catalog is still being embedded.")
    understood = understand_query(query.text) if query.text and method != "dense" else None
    clock.lap("understand_ms")
    signals: dict = {}
    if query.similar_to is not None:
        vector, signals = _similar_to_vector(query, version)
        if vector is None:
            return SearchResponse([], clock.total_ms(), version.version, None, "none", clock.timings)
    else:
        vector = encode_query(
            version, query.image, (understood.text or understood.searched) if understood else query.text
        )
    clock.lap("encode_ms")
    signals, predicted = _query_signals(query, vector, version, signals)
    clock.lap("predict_ms")
    if understood is not None:
        ranked, grouped, strategy = _rank_words(query, version, vector, understood, method, signals)
    else:
        grouped, strategy = retrieve(
            vector, version, query.filters, query.k, exact=query.exact, exclude_product=query.similar_to
        )
        _exact_rescore(vector, version, grouped)
        query_signals = ranking.QuerySignals(
            attributes=signals, tokens=scoring.token_set(query.text), photo_only=bool(query.image) and not query.text
        )
        ranked = ranking.rank(_candidates(grouped), query_signals, ranking_weights(), query.k)
    clock.lap("retrieve_rank_ms")
    response = SearchResponse(
        _results(ranked, grouped, query, understood), 0.0, version.version, predicted, strategy, clock.timings
    )
    response.understood = understood
    if query.similar_to is None and method == "hybrid":
        _count_facets(query, version, vector, response)
        clock.lap("facets_ms")
    response.took_ms = clock.total_ms()
    logger.info(
        "search kind=%s k=%d strategy=%s results=%d matched=%s took=%.1fms %s",
        query.kind,
        query.k,
        strategy,
        len(response.results),
        response.matched,
        response.took_ms,
        clock.timings,
    )
    return response


def warm_up() -> str:
    """Load the serving model and run one query through it, so the first shopper does
    not pay for model loading and lazy initialisation."""
    from PIL import Image

    from indexing.engine import load_search_model

    version = active_version(create=False)
    model = model_for_version(version) if version else load_search_model()
    model.encode_query(image=Image.new("RGB", (64, 64), "white"), text="gold ring")
    return model.version
