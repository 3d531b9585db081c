"""/healthz: the parts (database, broker, worker), the index counts, the active model."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from indexing.health import check_broker, check_database, check_worker
from indexing.services import index_status


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    body = {"database": check_database(), "broker": check_broker(), "worker": "unknown"}
    if body["database"] != "ok":
        return JsonResponse(body, status=503, headers={"Retry-After": "5"})
    body["worker"] = check_worker() if body["broker"] == "ok" else "error: broker unavailable"
    status = index_status()
    status.pop("backfilling", None)
    body.update(status)
    return JsonResponse(body)
