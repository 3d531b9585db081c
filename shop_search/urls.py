from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.static import serve

from search.views import healthz

admin.site.site_header = "shop-search: catalog"
admin.site.site_title = "shop-search admin"

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("search.urls")),
    # Product photos: stored under random names outside code and static paths.
    re_path(r"^media/(?P<path>products/.+\.(?:jpg|png|webp|gif|heic))$", serve, {"document_root": settings.MEDIA_ROOT}),
]
