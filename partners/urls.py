"""/api/v1/: included once from shop_search.urls under the `v1` namespace (NamespaceVersioning)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from . import views
from .exceptions import unknown_endpoint

app_name = "api"

router = SimpleRouter()
router.register("products", views.ProductViewSet, basename="product")
router.register("categories", views.CategoryViewSet, basename="category")

urlpatterns = [
    path("search/", views.SearchView.as_view(), name="search"),
    *router.urls,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("docs/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Anything else under /api/v1/ is a JSON 404 (a path without its slash is redirected here first).
    re_path(r"^(?:.*/)?$", unknown_endpoint),
]
