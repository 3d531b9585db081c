"""shop_search.urls with a view that fails, for the 500 pages (tests/ops/test_production.py)."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from shop_search import urls


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a deliberate failure for the 500 page test")


urlpatterns = [path("boom/", boom), path("api/v1/boom/", boom), *urls.urlpatterns]
handler400, handler403 = urls.handler400, urls.handler403
handler404, handler500 = urls.handler404, urls.handler500
