"""Offline evaluation of the live search service on a labelled query set.

Each query runs through `search.query.search`, the same path as the page and the API;
metrics come from `ml.training.metrics` so every number in the project means the same.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from catalog.uploads import check_image_upload
from ml.training import metrics

from .query import SearchQuery, search

QUERY_COLUMNS = ["query_image", "query_text", "relevant_skus"]


@dataclass
class EvalQuery:
    image_path: str
    text: str
    relevant: list[str]
    image: bytes | None = None


@dataclass
class EvalResult:
    query: EvalQuery
    ranked: list[str]
    thumbnails: dict[str, str] = field(default_factory=dict)


def read_queries(csv_path: Path) -> list[EvalQuery]:
    queries = []
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if [name.strip() for name in reader.fieldnames or []] != QUERY_COLUMNS:
            raise ValueError(f"query CSV columns must be exactly {','.join(QUERY_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            image_path = (row["query_image"] or "").strip()
            text = (row["query_text"] or "").strip()
            relevant = [sku.strip() for sku in (row["relevant_skus"] or "").split(";") if sku.strip()]
            if not (image_path or text) or not relevant:
                raise ValueError(f"line {line}: needs an image or a text, and at least one relevant sku")
            image = None
            if image_path:
                path = Path(image_path)
                path = path if path.is_absolute() else csv_path.parent / path
                image = check_image_upload(path.read_bytes()).data
            queries.append(EvalQuery(image_path, text, relevant, image))
    return queries


METHODS = ("baseline", "dense", "lexical", "hybrid")


class MiniLMBaseline:
    """The plain off-the-shelf text encoder: exact cosine between the query and each active
    product's "title. description", both mean-pooled MiniLM (no fusion, no index, no words)."""

    def __init__(self) -> None:
        from catalog.models import Product
        from indexing.engine import active_version, model_for_version

        self.model = model_for_version(active_version())
        rows = list(Product.objects.filter(is_active=True).values_list("sku", "title", "description"))
        self.skus = [sku for sku, _, _ in rows]
        self.vectors = self._encode([f"{title}. {description}" for _, title, description in rows])

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.text_features(texts)[:, : self.model.bert_feature_dim]  # MiniLM, mean-pooled
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def ranked(self, text: str, k: int) -> list[str]:
        scores = self.vectors @ self._encode([text])[0]
        return [self.skus[i] for i in np.argsort(-scores, kind="stable")[:k]]


def run_queries(
    queries: list[EvalQuery],
    k: int,
    *,
    exact: bool = False,
    method: str = "hybrid",
    progress: Callable[[int], None] | None = None,
) -> list[EvalResult]:
    """Each query through the served search (`method` picks the side-by-side variant)."""
    if method == "baseline":
        baseline = MiniLMBaseline()
    results = []
    for query in queries:
        if method == "baseline":
            if query.image:
                raise ValueError("the MiniLM baseline answers text queries only")
            results.append(EvalResult(query, baseline.ranked(query.text, k)))
            if progress:
                progress(1)
            continue
        response = search(SearchQuery(image=query.image, text=query.text, k=k, exact=exact), method=method)
        ranked = [result.product.sku for result in response.results]
        thumbs = {
            result.product.sku: result.matched_image.image.url
            for result in response.results[:5]
            if result.matched_image is not None
        }
        results.append(EvalResult(query, ranked, thumbs))
        if progress:
            progress(1)
    return results


def _matrices(ranked: list[str], relevant: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One query as a 1-row score/relevance matrix: returned items by rank, missed relevant last."""
    gallery = ranked + [sku for sku in relevant if sku not in ranked]
    scores = np.array(
        [[len(ranked) - i for i in range(len(ranked))] + [-1e9] * (len(gallery) - len(ranked))], dtype=np.float64
    )
    wanted = set(relevant)
    return scores, np.array([[sku in wanted for sku in gallery]])


def compute_metrics(results: list[EvalResult]) -> dict[str, float]:
    rows: dict[str, list[float]] = {"R@1": [], "R@5": [], "R@10": [], "mAP@10": [], "NDCG@10": [], "P@10": []}
    for result in results:
        scores, relevant = _matrices(result.ranked, result.query.relevant)
        for name, value in metrics.retrieval_metrics(scores, relevant).items():
            rows[name].append(value)
        rows["P@10"].append(metrics.precision_at_k(scores, relevant, 10))
    return {name: round(float(np.mean(values)), 4) if values else 0.0 for name, values in rows.items()}


def kind_of(query: EvalQuery) -> str:
    return "hybrid" if query.image and query.text else "image" if query.image else "text"


def metrics_by_kind(results: list[EvalResult]) -> dict[str, dict[str, float]]:
    """The same metrics for image-only, text-only and hybrid queries separately."""
    kinds: dict[str, list[EvalResult]] = {}
    for result in results:
        kinds.setdefault(kind_of(result.query), []).append(result)
    return {kind: {"queries": len(group), **compute_metrics(group)} for kind, group in sorted(kinds.items())}


def precision_recall_curve(results: list[EvalResult], k: int) -> list[tuple[float, float]]:
    """Mean precision and recall at each cut-off 1..k."""
    points = []
    for cut in range(1, k + 1):
        precision, recall = [], []
        for result in results:
            relevant = set(result.query.relevant)
            hits = sum(sku in relevant for sku in result.ranked[:cut])
            precision.append(hits / cut)
            recall.append(hits / len(relevant))
        points.append((float(np.mean(recall)), float(np.mean(precision))))
    return points


def to_json(results: list[EvalResult], scores: dict[str, float]) -> dict:
    return {
        "metrics": scores,
        "by_kind": metrics_by_kind(results),
        "results": [
            {
                "query_image": r.query.image_path,
                "query_text": r.query.text,
                "relevant_skus": r.query.relevant,
                "ranked_skus": r.ranked,
            }
            for r in results
        ],
    }


def _svg_curve(points: list[tuple[float, float]]) -> str:
    size, pad = 320, 36
    coords = " ".join(f"{pad + r * (size - 2 * pad):.1f},{size - pad - p * (size - 2 * pad):.1f}" for r, p in points)
    return (
        f'<svg width="{size}" height="{size}" role="img" aria-label="precision-recall curve">'
        f'<rect x="{pad}" y="{pad}" width="{size - 2 * pad}" height="{size - 2 * pad}" fill="none" stroke="#ccc"/>'
        f'<polyline points="{coords}" fill="none" stroke="#8a5a9e" stroke-width="2"/>'
        f'<text x="{size / 2}" y="{size - 6}" text-anchor="middle" font-size="12">recall</text>'
        f'<text x="10" y="{size / 2}" font-size="12" transform="rotate(-90 10 {size / 2})">precision</text></svg>'
    )


def write_report(path: Path, results: list[EvalResult], scores: dict[str, float], k: int, title: str) -> None:
    rows = []
    for result in results:
        relevant = set(result.query.relevant)
        cells = "".join(
            f'<td class="{"hit" if sku in relevant else "miss"}">'
            f'<img src="{html.escape(result.thumbnails.get(sku, ""))}" '
            f'alt="{html.escape(sku)}"><br>{html.escape(sku)}</td>'
            for sku in result.ranked[:5]
        )
        rows.append(
            f"<tr><td>{html.escape(result.query.image_path or '—')}<br><em>{html.escape(result.query.text)}</em>"
            f"<br>wanted: {html.escape(', '.join(result.query.relevant))}</td>{cells}</tr>"
        )
    table = "".join(f"<tr><th>{name}</th><td>{value:.3f}</td></tr>" for name, value in scores.items())
    path.write_text(
        "<!doctype html><meta charset='utf-8'><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:system-ui;margin:20px}td{vertical-align:top;font-size:12px;padding:4px}"
        "img{width:90px;height:90px;object-fit:contain}.hit{background:#dff5df}.miss{background:#fbe9e9}</style>"
        f"<h1>{html.escape(title)}</h1><table>{table}</table>{_svg_curve(precision_recall_curve(results, k))}"
        f"<h2>Queries (top 5, hits in green)</h2><table>{''.join(rows)}</table>"
    )


def dump(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2))


# Things a jewelry shop does not sell: the other side of the "matched" threshold.
OFF_CATALOGUE_QUERIES = (
    "laptop",
    "iphone charger",
    "running shoes",
    "pizza",
    "sofa cushion",
    "car tyre",
    "washing machine",
    "python programming book",
    "garden hose",
    "coffee mug",
    "winter jacket",
    "usb cable",
)


def best_similarities(texts: list[str]) -> list[float]:
    """The best exact cosine between each text's query vector and any active product."""
    from django.db import connection

    from indexing.engine import active_version
    from indexing.vector_index import TABLES

    from .query import _vector_literal, encode_query

    version = active_version()
    out = []
    with connection.cursor() as cursor:
        for text in texts:
            cursor.execute(
                f"SELECT max(1 - (e.embedding <=> %s::vector)) FROM {TABLES['product']} e "
                "JOIN catalog_product p ON p.id = e.product_id "
                f"WHERE p.is_active AND e.model_version_id = {int(version.pk)}",
                [_vector_literal(encode_query(version, None, text))],
            )
            out.append(float(cursor.fetchone()[0] or -1.0))
    return out


def calibrate_match_threshold(queries: list[EvalQuery]) -> dict[str, float]:
    """Where SEARCH_MATCH_MIN_SIMILARITY can sit: between the best similarity of off-catalogue
    queries and that of the labelled queries (which all have relevant products)."""
    wanted = best_similarities([q.text for q in queries if q.text and not q.image])
    unwanted = best_similarities(list(OFF_CATALOGUE_QUERIES))
    return {
        "labelled_min": round(min(wanted), 4),
        "labelled_p05": round(float(np.percentile(wanted, 5)), 4),
        "off_catalogue_max": round(max(unwanted), 4),
        "off_catalogue_mean": round(float(np.mean(unwanted)), 4),
    }
