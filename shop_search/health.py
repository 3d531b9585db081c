"""/healthz: the parts (database, broker, worker, the model in this process), the index
counts, the active model, and photos whose file is missing."""

from __future__ import annotations

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from catalog.services import missing_photo_files
from indexing.engine import active_version, loaded_model_versions
from indexing.health import check_broker, check_database, check_worker
from indexing.services import index_status

# A stat per photo: counted at most this often, not on every poll.
PHOTOS_MISSING_CACHE_SECONDS = 60


def check_model() -> str:
    """ok once this web process holds the active model (gunicorn loads it before serving)."""
    loaded = loaded_model_versions()
    if not loaded:
        return "loading"
    version = active_version(create=False)
    if version is not None and version.version not in loaded:
        return f"error: serving {', '.join(loaded)}, but the active version is {version.version}"
    return "ok"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    body: dict[str, object] = {
        "database": check_database(),
        "broker": check_broker(),
        "worker": "unknown",
        "model": "unknown",
    }
    if body["database"] != "ok":
        return JsonResponse(body, status=503, headers={"Retry-After": "5"})
    body["worker"] = check_worker() if body["broker"] == "ok" else "error: broker unavailable"
    body["model"] = check_model()
    status = index_status(check_files=False)
    status.pop("backfilling", None)
    body.update(status)
    body["photos_missing"] = cache.get_or_set(
        "healthz:photos-missing", lambda: len(missing_photo_files()), PHOTOS_MISSING_CACHE_SECONDS
    )
    return JsonResponse(body)
