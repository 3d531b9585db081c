"""Facet counts of a query's matching set, in one SQL round trip.

The matching set is the one the results come from (`search.query._hybrid_rank`): for
words, the products the full-text index finds for any of the query's words, or whose
vector is at least `SEARCH_MATCH_MIN_SIMILARITY` close to the query's; for a photo, every
active product. Each facet is counted with every filter applied but its own (selecting
another metal replaces the metal filter), so a value's count is exactly the number of
products that selecting it leaves to rank: the page never leads to an empty result.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Field

from catalog import searchable
from indexing.vector_index import TABLES


@dataclass
class FacetCounts:
    facets: dict[str, list[dict]]
    total: int  # the matching set under all filters
    unfiltered: int  # the matching set with no filter: 0 means nothing matches the words


def _without(filters, params: tuple[str, ...]):
    """The same filters less one facet's own (selecting another value replaces it)."""
    return type(filters)(**{name: value for name, value in filters.items if name not in params})


def faceted() -> tuple[searchable.Attribute, ...]:
    return tuple(a for a in searchable.filters() if a.facet)


def _db_column(attribute: searchable.Attribute) -> str:
    from catalog.models import Product

    field = Product._meta.get_field(attribute.name)
    assert isinstance(field, Field), attribute.name  # a declared attribute is a concrete field
    assert field.column is not None
    return field.column


def _column(attribute: searchable.Attribute) -> str:
    kind = attribute.kind
    if kind is searchable.FilterKind.CATEGORY:
        return "(SELECT slug FROM catalog_category c WHERE c.id = p.category_id)"
    if kind is searchable.FilterKind.RANGE:
        return f"width_bucket(p.{_db_column(attribute)}, %s::numeric[])::text"
    if kind is searchable.FilterKind.FLAG:
        return f"({attribute.condition})::text"
    return f"p.{_db_column(attribute)}::text"


def price_bounds(buckets: int | None = None) -> list[Decimal]:
    """Bucket edges at the catalogue's price quantiles, rounded to two significant digits."""
    buckets = buckets or settings.SEARCH_PRICE_BUCKETS
    quantiles = [i / buckets for i in range(1, buckets)]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY price::float8) "
            "FROM catalog_product WHERE is_active",
            [quantiles],
        )
        values = cursor.fetchone()[0] or []
    edges: list[Decimal] = []
    for value in values:
        if value is None or value <= 0:
            continue
        rounded = Decimal(f"{float(value):.2g}").quantize(Decimal(1))
        if rounded > 0 and (not edges or rounded > edges[-1]):
            edges.append(rounded)
    return edges


def _price_label(low: Decimal | None, high: Decimal | None, currency: str) -> str:
    if low is None:
        return f"under {currency} {high:,.0f}"
    if high is None:
        return f"{currency} {low:,.0f} and more"
    return f"{currency} {low:,.0f} to {high:,.0f}"


def count(filters, *, fulltext_groups: list[list[str]] | None, vector: str | None, version_id: int) -> FacetCounts:
    """Counts per facet value. `fulltext_groups` and `vector` describe a query with words;
    both None count every active product (a photo, or no query)."""
    from .lexical import _group_queries

    params: list = []
    with connection.cursor() as cursor:
        if fulltext_groups is not None:
            queries = _group_queries(cursor, fulltext_groups)
            conditions = []
            if queries:
                conditions.append("d.document @@ %s::tsquery")
                params.append(" | ".join(f"({q})" for q in queries))
            conditions.append("1 - (e.embedding <=> %s::vector) >= %s")
            params += [vector, settings.SEARCH_MATCH_MIN_SIMILARITY]
            matching = (
                "SELECT p.* FROM catalog_product p "
                "LEFT JOIN search_productdocument d ON d.product_id = p.id "
                f"LEFT JOIN {TABLES['product']} e ON e.product_id = p.id AND e.model_version_id = {int(version_id)} "
                f"WHERE p.is_active AND ({' OR '.join(conditions)})"
            )
        else:
            matching = "SELECT p.* FROM catalog_product p WHERE p.is_active"
        edges = price_bounds()
        parts, part_params = [], []
        for attribute in faceted():
            assert attribute.name.isidentifier()  # a model field name, safe as a literal
            where, where_params = _without(filters, attribute.params).sql()
            if attribute.kind is searchable.FilterKind.RANGE:
                part_params.append([str(edge) for edge in edges] or ["0"])
            parts.append(
                f"SELECT '{attribute.name}' AS facet, {_column(attribute)} AS value, count(*) "
                f"FROM m p WHERE {where} GROUP BY 2"
            )
            part_params += where_params
        where, where_params = filters.sql()
        parts.append(f"SELECT 'total', '', count(*) FROM m p WHERE {where}")
        part_params += where_params
        parts.append("SELECT 'unfiltered', '', count(*) FROM m p")
        cursor.execute(f"WITH m AS MATERIALIZED ({matching}) " + " UNION ALL ".join(parts), params + part_params)
        rows = cursor.fetchall()
        currency = _shop_currency(cursor)
    return _shape(rows, edges, currency)


def _shop_currency(cursor) -> str:
    cursor.execute(
        "SELECT currency FROM catalog_product WHERE is_active GROUP BY currency ORDER BY count(*) DESC LIMIT 1"
    )
    row = cursor.fetchone()
    return row[0] if row else "INR"


def _shape(rows: list[tuple], edges: list[Decimal], currency: str) -> FacetCounts:
    from catalog.models import Category

    declared = {a.name: a for a in faceted()}
    names = dict(Category.objects.values_list("slug", "name"))
    facets: dict[str, list[dict]] = {name: [] for name in declared}
    totals = {"total": 0, "unfiltered": 0}
    for facet, value, n in rows:
        if facet in totals:
            totals[facet] = n
            continue
        attribute = declared[facet]
        if attribute.kind is searchable.FilterKind.CATEGORY:
            facets[facet].append({"value": value, "label": names.get(value, value), "count": n})
        elif attribute.kind is searchable.FilterKind.FLAG:
            if value == "true":
                facets[facet].append({"value": "true", "label": attribute.label, "count": n})
        elif attribute.kind is searchable.FilterKind.RANGE:
            if value is not None:  # no price (price on request): in no price bucket
                facets[facet].append(_bucket(attribute, int(value), edges, currency, n))
        else:
            facets[facet].append({"value": value, "label": attribute.choice_label(value), "count": n})
    for name, values in facets.items():
        if declared[name].kind is searchable.FilterKind.RANGE:
            values.sort(key=lambda item: Decimal(item[f"{name}_min"] or -1))
        else:
            values.sort(key=lambda item: (-item["count"], item["label"]))
    return FacetCounts(facets, totals["total"], totals["unfiltered"])


def _bucket(attribute: searchable.Attribute, index: int, edges: list[Decimal], currency: str, n: int) -> dict:
    """One price bucket as the filter values that select exactly it (both ends inclusive)."""
    low = edges[index - 1] if index > 0 and edges else None
    upper = edges[index] if index < len(edges) else None
    high = upper - Decimal("0.01") if upper is not None else None
    low_param, high_param = attribute.params
    return {
        "value": f"{low if low is not None else ''}-{high if high is not None else ''}",
        "label": _price_label(low, upper, currency),
        "count": n,
        low_param: str(low) if low is not None else None,
        high_param: str(high) if high is not None else None,
    }
