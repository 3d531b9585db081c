"""Where one photo search spends its time: `search.query.search` in this process, on the
bench catalog, unique photos (no cache hits), per-stage timings + a cProfile of the rest."""

from __future__ import annotations

import cProfile
import io
import logging
import pstats
import statistics

from .common import OUT_DIR

logger = logging.getLogger("benchmarks.profile")


def run(photos: list[bytes], backend: str) -> dict:
    from django.core.cache import cache

    from indexing.engine import active_version, model_for_version
    from ml.accel import use_backend
    from search.query import SearchQuery, search

    model = model_for_version(active_version(create=False))
    if getattr(model, "inference_backend", "eager") != backend:
        use_backend(model, backend)
    cache.clear()
    search(SearchQuery(image=photos[0], k=20))  # warm
    stages: dict[str, list[float]] = {}
    profiler = cProfile.Profile()
    for photo in photos[1:]:
        profiler.enable()
        response = search(SearchQuery(image=photo, k=20))
        profiler.disable()
        for name, value in response.timings.items():
            stages.setdefault(name, []).append(value)
        stages.setdefault("total_ms", []).append(response.took_ms)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
    stats.print_stats(40)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "profile_search.txt").write_text(text.getvalue())
    top = []
    for (filename, line, function), (_cc, nc, _tt, ct, _) in sorted(stats.stats.items(), key=lambda item: -item[1][3]):
        if any(part in filename for part in ("/search/", "/ml/", "/catalog/", "onnxruntime", "PIL/")):
            top.append(
                {
                    "function": f"{filename.split('/work/main/')[-1]}:{line}({function})",
                    "calls_per_query": round(nc / max(1, len(photos) - 1), 1),
                    "cumulative_ms_per_query": round(ct * 1000 / max(1, len(photos) - 1), 2),
                }
            )
        if len(top) >= 15:
            break
    return {
        "profile.stages_median_ms": {name: round(statistics.median(values), 2) for name, values in stages.items()},
        "profile.top": top,
        "profile.backend": backend,
    }
