from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.uploads import UploadError
from search import evaluation


class Command(BaseCommand):
    help = "Run a labelled query set (query_image,query_text,relevant_skus) through search and print metrics."

    def add_arguments(self, parser):
        parser.add_argument("queries", type=Path)
        parser.add_argument("--k", type=int, default=10)
        parser.add_argument("--exact", action="store_true", help="exact cosine over all vectors, no HNSW")
        parser.add_argument("--json", type=Path, dest="json_out")
        parser.add_argument("--report", type=Path, help="write an HTML page with thumbnails and a PR curve")

    def handle(self, *args, queries: Path, k: int, exact: bool, json_out: Path | None, report: Path | None, **options):
        if not queries.is_file():
            raise CommandError(f"{queries} does not exist")
        if not 1 <= k <= settings.SEARCH_MAX_K:
            raise CommandError(f"--k must be between 1 and {settings.SEARCH_MAX_K}")
        try:
            items = evaluation.read_queries(queries)
        except (ValueError, OSError, UploadError) as exc:
            raise CommandError(str(getattr(exc, "message", exc))) from None
        with tqdm(total=len(items), unit="query", desc="evaluate", disable=options["verbosity"] == 0) as bar:
            results = evaluation.run_queries(items, k, exact=exact, progress=bar.update)
        scores = evaluation.compute_metrics(results)
        mode = "exact" if exact else "hnsw"
        self.stdout.write(f"{len(results)} queries, k={k}, {mode}")
        by_kind = evaluation.metrics_by_kind(results)
        self.stdout.write(f"{'':>8}  {'all':>7}" + "".join(f"  {kind:>7}" for kind in by_kind))
        for name, value in scores.items():
            self.stdout.write(f"{name:>8}: {value:7.4f}" + "".join(f"  {row[name]:7.4f}" for row in by_kind.values()))
        self.stdout.write(
            f"{'queries':>8}: {len(results):7d}" + "".join(f"  {row['queries']:7d}" for row in by_kind.values())
        )
        if json_out:
            evaluation.dump(json_out, evaluation.to_json(results, scores))
        if report:
            evaluation.write_report(report, results, scores, k, f"shop-search evaluation ({mode}, {queries.name})")
