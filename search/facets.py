"""Facet counts of a query's matching set, in one SQL round trip.

The matching set is the one the results come from (`search.query._hybrid_rank`): for
words, the products the full-text index finds for any of the query's words, or whose
vector is at least `SEARCH_MATCH_MIN_SIMILARITY` close to the query's; for a photo, every
active product. Each facet is counted with every filter applied but its own (selecting
another metal replaces the metal filter), so a value's count is exactly the number of
products that selecting it leaves to rank: the page never leads to an empty result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection

from catalog.choices import Gemstone, Metal
from indexing.vector_index import TABLES

# facet name -> (the Filters fields that selecting one of its values sets)
FACET_FILTER_FIELDS = {
    "category": ("category",),
    "metal": ("metal",),
    "gemstone": ("gemstone",),
    "price": ("price_min", "price_max"),
    "in_stock": ("in_stock",),
}


@dataclass
class FacetCounts:
    facets: dict[str, list[dict]]
    total: int  # the matching set under all filters
    unfiltered: int  # the matching set with no filter: 0 means nothing matches the words


def _without(filters, names: tuple[str, ...]):
    return dataclasses.replace(filters, **{name: (False if name == "in_stock" else None) for name in names})


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
    edges = []
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
        for name, fields in FACET_FILTER_FIELDS.items():
            where, where_params = _without(filters, fields).sql()
            column = {
                "category": "(SELECT slug FROM catalog_category c WHERE c.id = p.category_id)",
                "metal": "p.metal",
                "gemstone": "p.gemstone",
                "price": "width_bucket(p.price, %s::numeric[])::text",
                "in_stock": "(p.stock > 0)::text",
            }[name]
            if name == "price":
                part_params.append([str(edge) for edge in edges] or ["0"])
            parts.append(f"SELECT '{name}' AS facet, {column} AS value, count(*) FROM m p WHERE {where} GROUP BY 2")
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

    names = dict(Category.objects.values_list("slug", "name"))
    metal_labels, gemstone_labels = dict(Metal.choices), dict(Gemstone.choices)
    facets: dict[str, list[dict]] = {name: [] for name in FACET_FILTER_FIELDS}
    total = unfiltered = 0
    for facet, value, n in rows:
        if facet == "total":
            total = n
        elif facet == "unfiltered":
            unfiltered = n
        elif facet == "category":
            facets["category"].append({"value": value, "label": names.get(value, value), "count": n})
        elif facet == "metal":
            facets["metal"].append({"value": value, "label": metal_labels.get(value, value), "count": n})
        elif facet == "gemstone":
            facets["gemstone"].append({"value": value, "label": gemstone_labels.get(value, value), "count": n})
        elif facet == "in_stock":
            if value == "true":
                facets["in_stock"].append({"value": "true", "label": "In stock", "count": n})
        elif facet == "price":
            index = int(value)
            low = edges[index - 1] if index > 0 and edges else None
            high = (edges[index] - Decimal("0.01")) if index < len(edges) else None
            facets["price"].append(
                {
                    "value": f"{low or ''}-{high or ''}",
                    "label": _price_label(low, edges[index] if index < len(edges) else None, currency),
                    "count": n,
                    "price_min": str(low) if low is not None else None,
                    "price_max": str(high) if high is not None else None,
                    "_order": index,
                }
            )
    for name, values in facets.items():
        if name == "price":
            values.sort(key=lambda item: item.pop("_order"))
        else:
            values.sort(key=lambda item: (-item["count"], item["label"]))
    return FacetCounts(facets, total, unfiltered)
