from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from catalog.uploads import UploadError
from search import evaluation

TABLE_METRICS = ("mAP@10", "P@10", "R@10", "NDCG@10")


class Command(BaseCommand):
    help = (
        "Run labelled query sets (query_image,query_text,relevant_skus) through search and print metrics; "
        "--methods compares retrieval methods side by side in one run."
    )

    def add_arguments(self, parser):
        parser.add_argument("queries", type=Path, nargs="+")
        parser.add_argument("--k", type=int, default=10)
        parser.add_argument("--exact", action="store_true", help="exact cosine over all vectors, no HNSW")
        parser.add_argument(
            "--methods",
            default="hybrid",
            help=f"comma-separated, of {','.join(evaluation.METHODS)}: baseline = plain MiniLM cosine on "
            "title + description; dense = HNSW + small boosts (before full text); lexical = full text + "
            "intent; hybrid = what search serves",
        )
        parser.add_argument(
            "--calibrate",
            action="store_true",
            help="also print the best dense similarity of these queries and of off-catalogue ones "
            "(where SEARCH_MATCH_MIN_SIMILARITY can sit)",
        )
        parser.add_argument("--json", type=Path, dest="json_out")
        parser.add_argument("--report", type=Path, help="write an HTML page with thumbnails and a PR curve")

    def handle(self, *args, queries: list[Path], k: int, exact: bool, methods: str, **options):
        chosen = [m.strip() for m in methods.split(",") if m.strip()]
        unknown = sorted(set(chosen) - set(evaluation.METHODS))
        if unknown:
            raise CommandError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(evaluation.METHODS)}")
        if not 1 <= k <= settings.SEARCH_MAX_K:
            raise CommandError(f"--k must be between 1 and {settings.SEARCH_MAX_K}")
        payload = {}
        for path in queries:
            payload[path.name] = self._evaluate_set(path, k, exact, chosen, options)
        if options["json_out"]:
            evaluation.dump(options["json_out"], payload)

    def _evaluate_set(self, path: Path, k: int, exact: bool, methods: list[str], options) -> dict:
        if not path.is_file():
            raise CommandError(f"{path} does not exist")
        try:
            items = evaluation.read_queries(path)
        except (ValueError, OSError, UploadError) as exc:
            raise CommandError(str(getattr(exc, "message", exc))) from None
        mode = "exact" if exact else "hnsw"
        self.stdout.write(f"{path.name}: {len(items)} queries, k={k}, {mode}")
        out = {}
        for method in methods:
            with tqdm(total=len(items), unit="query", desc=method, disable=options["verbosity"] == 0) as bar:
                results = evaluation.run_queries(items, k, exact=exact, method=method, progress=bar.update)
            scores = evaluation.compute_metrics(results)
            out[method] = evaluation.to_json(results, scores)
            if len(methods) == 1:
                self._by_kind(scores, results)
            if options["report"] and method == methods[-1]:
                evaluation.write_report(
                    options["report"], results, scores, k, f"shop-search evaluation ({method}, {mode}, {path.name})"
                )
        if options["calibrate"]:
            self.stdout.write(f"matched threshold: {evaluation.calibrate_match_threshold(items)}")
        if len(methods) > 1:
            self.stdout.write(f"{'method':>10}" + "".join(f"  {name:>8}" for name in TABLE_METRICS))
            for method, row in out.items():
                metrics = row["metrics"]
                self.stdout.write(f"{method:>10}" + "".join(f"  {metrics[name]:8.4f}" for name in TABLE_METRICS))
        return out

    def _by_kind(self, scores: dict, results: list) -> None:
        by_kind = evaluation.metrics_by_kind(results)
        self.stdout.write(f"{'':>8}  {'all':>7}" + "".join(f"  {kind:>7}" for kind in by_kind))
        for name, value in scores.items():
            self.stdout.write(f"{name:>8}: {value:7.4f}" + "".join(f"  {row[name]:7.4f}" for row in by_kind.values()))
        self.stdout.write(
            f"{'queries':>8}: {len(results):7d}" + "".join(f"  {row['queries']:7d}" for row in by_kind.values())
        )
