from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import check_broker, check_database, check_worker


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    from .indexing import index_status

    body = {"database": check_database(), "broker": check_broker(), "worker": "unknown"}
    if body["database"] != "ok":
        return JsonResponse(body, status=503, headers={"Retry-After": "5"})
    body["worker"] = check_worker() if body["broker"] == "ok" else "error: broker unavailable"
    status = index_status()
    status.pop("backfilling", None)
    body.update(status)
    return JsonResponse(body)


def search_page(request: HttpRequest):
    from django.shortcuts import render

    return render(request, "search/search.html", {})


def product_detail(request: HttpRequest, sku: str):
    from django.shortcuts import get_object_or_404, render

    from catalog.models import Product

    product = get_object_or_404(Product.objects.prefetch_related("images"), sku=sku, is_active=True)
    return render(request, "search/product.html", {"product": product})
