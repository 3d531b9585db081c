from django.contrib import admin
from django.urls import include, path, re_path

from shop_search.errors import api_not_found
from shop_search.health import healthz
from shop_search.security import serve_product_photo

admin.site.site_header = "shop-search: catalog"
admin.site.site_title = "shop-search admin"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("partners.urls", namespace="v1")),
    re_path(r"^api/", api_not_found),  # /api/v2/ and the like: JSON, DEBUG on or off
    path("", include("search.urls")),
    # Product photos: stored under random names outside code and static paths.
    # Served with their exact image type, nosniff and a sandboxing CSP (shop_search/security.py).
    re_path(
        r"^media/(?P<path>products/[0-9a-f]{2}/[0-9a-f]{64}(?:_[A-Za-z0-9]{7})?\.(?:jpg|png|webp|gif|heic))$",
        serve_product_photo,
    ),
]

# DEBUG off: styled pages for the shop, the API's JSON error shape under /api/ (any version).
handler400 = "shop_search.errors.bad_request"
handler403 = "shop_search.errors.permission_denied"
handler404 = "shop_search.errors.page_not_found"
handler500 = "shop_search.errors.server_error"
