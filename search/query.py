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

from . import facets as facet_counts
from . import lexical, ranking
from .understanding import Understood, Vocabulary, understand, words

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


def _closeness(similarity: float) -> str:
    """A cosine in words: its scale means nothing to a shopper, so no percentage."""
    if similarity >= 0.9:
        return "very close"
    if similarity >= 0.75:
        return "close"
    return "somewhat close"


def _reason(result: ranking.RankedResult, product: Product, query: SearchQuery) -> str:
    parts = []
    b = result.breakdown
    if query.image:
        parts.append(f"looks {_closeness(b['similarity'])} to your photo")
    elif query.kind == "similar":
        parts.append(f"looks {_closeness(b['similarity'])} to this piece")
    # Name the category only when the query is more likely than not to be one.
    same = []
    if b.get("category", 0) >= 0.5 * settings.SEARCH_RANKING_WEIGHTS["category"] > 0:
        same.append("category")
    if b.get("metal", 0) > 0:
        same.append("metal")
    if b.get("gemstone", 0) > 0:
        same.append("stone")
    if same:
        parts.append("same " + " and ".join([", ".join(same[:-1]), same[-1]] if len(same) > 1 else same))
    return "; ".join(parts)


def _words_found(understood: Understood, text: str) -> list[str]:
    """The query's words (or their alternatives) found in a product's text, as typed."""
    found_tokens = {lexical_form(w) for w in words(text)}
    found = []
    for group in understood.terms:
        for alternative in group:
            if all(lexical_form(w) in found_tokens for w in alternative.split()):
                found.append(alternative)
                break
    return found


def lexical_form(word: str) -> str:
    """Plural-insensitive form for the "why" line (the index itself stems with `english`)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _reason_words(result: ranking.RankedResult, product: Product, understood: Understood, photo: bool) -> str:
    """What matched, in words: "title has: yellow gold, sapphire; a necklace in yellow gold"."""
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
        named.append("no stone" if understood.gemstone == Gemstone.NONE else understood.gemstone.replace("_", " "))
    if b.get("price", 0) > 0:
        named.append("in your price range")
    if named:
        parts.append("is " + ", ".join(named))
    if not parts:
        parts.append("close in meaning to your words")
    return "; ".join(parts)


def load_vocabulary() -> Vocabulary:
    """The catalogue's categories, the merchants' synonyms and the shop's currency, read
    for each query (three small queries): an admin edit applies from the next search on."""
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
    """Typo correction against the catalogue, then the parse."""
    vocabulary = load_vocabulary()
    protected = {w for phrase in [*vocabulary.synonyms, *vocabulary.categories] for w in phrase.split()}
    corrections = lexical.correct(words(text), protected)
    return understand(text, vocabulary, corrections)


def intent_for_ranking(understood: Understood) -> ranking.Intent:
    metals = understood.metals
    return ranking.Intent(
        category=understood.category,
        metals=tuple(metals),
        metal_family=tuple(ranking_gold_family(metals)),
        gemstone=understood.gemstone,
        shape=understood.shape,
        price_min=float(understood.price_min) if understood.price_min is not None else None,
        price_max=float(understood.price_max) if understood.price_max is not None else None,
        groups=len(understood.terms),
    )


def ranking_gold_family(metals: tuple[str, ...]) -> tuple[str, ...]:
    from .understanding import GOLD_METALS

    return GOLD_METALS if metals and set(metals) <= set(GOLD_METALS) else ()


def _product_gemstones(gemstone: str, gemstone_text: str) -> frozenset[str]:
    stones = {gemstone}
    for part in (gemstone_text or "").split(","):
        stone = gemstone_from_text(part)
        if stone not in (Gemstone.OTHER, Gemstone.NONE) or not part.strip():
            stones.add(stone)
    if len(stones) > 1:
        stones.discard(Gemstone.NONE)
    return frozenset(stones)


def _merge_lexical(grouped: dict[int, dict], hits: list[lexical.LexicalHit]) -> dict[int, lexical.LexicalHit]:
    by_product = {}
    for hit in hits:
        grouped.setdefault(hit.product_id, {})
        by_product[hit.product_id] = hit
    return by_product


def _hybrid_rank(
    query: SearchQuery, understood: Understood, grouped: dict[int, dict], hits: dict[int, lexical.LexicalHit]
) -> list[ranking.RankedResult]:
    photo = bool(query.image)
    rows = Product.objects.filter(pk__in=list(grouped)).values_list(
        "pk", "category__slug", "metal", "gemstone", "gemstone_text", "title", "description", "price"
    )
    similarity = {pid: grouped[pid].get("product", -1.0) for pid in grouped}
    if photo:  # a photo with words: the fused product vector, as before
        similarity = {pid: ranking.similarity(_features_stub(grouped[pid]), photo_only=False) for pid in grouped}
    threshold = settings.SEARCH_MATCH_MIN_SIMILARITY
    dense_order = sorted(grouped, key=lambda pid: (-similarity[pid], pid))
    dense_rank = {pid: i for i, pid in enumerate(dense_order, start=1)}
    lexical_rank = {pid: i for i, pid in enumerate(hits, start=1)}
    candidates = []
    for pid, category, metal, gemstone, gemstone_text, title, description, price in rows:
        if not photo and pid not in hits and similarity[pid] < threshold:
            continue  # outside the matching set (the one the facets count)
        candidates.append(
            ranking.HybridCandidate(
                product_id=pid,
                dense_rank=dense_rank[pid] if similarity[pid] > -1.0 else None,
                lexical_rank=lexical_rank.get(pid),
                groups_matched=hits[pid].groups_matched if pid in hits else 0,
                similarity=similarity[pid],
                category=category,
                metal=metal,
                gemstones=_product_gemstones(gemstone, gemstone_text),
                text=f"{title} {description}",
                price=float(price),
            )
        )
    weights = settings.SEARCH_HYBRID_WEIGHTS["photo_text" if photo else "text"]
    return ranking.rank_hybrid(candidates, intent_for_ranking(understood), weights, query.k)


def _features_stub(entry: dict) -> ranking.CandidateFeatures:
    return ranking.CandidateFeatures(
        product_id=0,
        image_similarity=entry["image"][0] if "image" in entry else None,
        product_similarity=entry.get("product"),
        category="",
        metal="",
        gemstone="",
        text="",
    )


def _encode(query: SearchQuery, version: ModelVersion, understood: Understood | None) -> tuple[np.ndarray | None, dict]:
    """The query vector and the category/metal/stone signals of the dense-only ranking."""
    signal_kwargs: dict = {}
    if query.similar_to is not None:
        from indexing.models import ProductEmbedding

        row = (
            ProductEmbedding.objects.filter(product_id=query.similar_to, model_version=version)
            .values_list("embedding", flat=True)
            .first()
        )
        if row is None:
            return None, signal_kwargs
        category = Product.objects.filter(pk=query.similar_to).values_list("category__name", flat=True).first()
        signal_kwargs["category"] = {category: 1.0} if category else {}
        return np.asarray(row, dtype=np.float32), signal_kwargs
    text = (understood.text or understood.searched) if understood else query.text
    return encode_query(version, query.image, text or query.text), signal_kwargs


def _image_signals(query: SearchQuery, vector: np.ndarray, version: ModelVersion, signal_kwargs: dict):
    predicted = None
    if query.image:
        distribution = predict_category(vector, version)
        if distribution:
            predicted = next(iter(distribution.items()))
            signal_kwargs["category"] = distribution
    return predicted


def _dense_rank(query: SearchQuery, grouped: dict[int, dict], signal_kwargs: dict) -> list[ranking.RankedResult]:
    """Photo-only and "more like this": the ranking as it was (similarity + small boosts)."""
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
    return ranking.rank(features, signals, settings.SEARCH_RANKING_WEIGHTS, query.k)


def _results(
    query: SearchQuery, ranked: list[ranking.RankedResult], grouped: dict[int, dict], understood: Understood | None
) -> list[SearchResult]:
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


def search(query: SearchQuery, *, method: str = "hybrid") -> SearchResponse:
    """One query -> results. `method` is for the side-by-side evaluation only: "dense" is
    the ranking before full text (HNSW + small boosts), "lexical" full text + intent alone."""
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
    understood = understand_query(query.text) if query.text and method != "dense" else None
    t = lap("understand_ms", t)
    vector, signal_kwargs = _encode(query, version, understood)
    if vector is None:
        took = round((time.perf_counter() - started) * 1000, 1)
        return SearchResponse([], took, version.version, None, "none", timings)
    t = lap("encode_ms", t)
    predicted = _image_signals(query, vector, version, signal_kwargs)
    if query.text and understood is None:
        from_text = text_signals(query.text)
        signal_kwargs.update({key: value for key, value in from_text.items() if key != "category" or not query.image})
        if "category" in from_text and query.image:
            signal_kwargs["category"] = from_text["category"]  # the shopper's words beat our guess
    t = lap("predict_ms", t)

    if method == "lexical":
        grouped, strategy = {}, "fulltext"
    else:
        grouped, strategy = retrieve(
            vector, version, query.filters, query.k, exact=query.exact, exclude_product=query.similar_to
        )
    hits: dict[int, lexical.LexicalHit] = {}
    if understood is not None:
        where, params = query.filters.sql()
        found = lexical.lexical_candidates(understood.terms, where, params, query.k * settings.SEARCH_CANDIDATE_FACTOR)
        hits = _merge_lexical(grouped, found)
        strategy += "+fulltext" if method != "lexical" else ""
    t = lap("retrieve_ms", t)
    _exact_rescore(vector, version, grouped)
    if understood is not None:
        if method == "lexical":
            for entry in grouped.values():
                entry.pop("image", None)
                entry["product"] = -1.0  # full text only: no dense order
        ranked = _hybrid_rank(query, understood, grouped, hits)
    else:
        ranked = _dense_rank(query, grouped, signal_kwargs)
    results = _results(query, ranked, grouped, understood)
    lap("rank_ms", t)
    response = SearchResponse(results, 0.0, version.version, predicted, strategy, timings, understood=understood)
    if query.similar_to is None and method == "hybrid":
        t = time.perf_counter()
        counted = facet_counts.count(
            query.filters,
            fulltext_groups=understood.terms if understood is not None and not query.image else None,
            vector=_vector_literal(vector) if understood is not None and not query.image else None,
            version_id=version.pk,
        )
        response.facets, response.total_matching = counted.facets, counted.total
        response.matched = counted.unfiltered > 0
        if not response.matched:
            response.results = []
        lap("facets_ms", t)
    response.took_ms = round((time.perf_counter() - started) * 1000, 1)
    logger.info(
        "search kind=%s k=%d strategy=%s results=%d matched=%s took=%.1fms %s",
        query.kind,
        query.k,
        strategy,
        len(response.results),
        response.matched,
        response.took_ms,
        timings,
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
