from django.urls import path, re_path

from . import views

app_name = "search"

urlpatterns = [
    path("products/<str:sku>/", views.product_detail, name="product"),
    re_path(r"^query-photo/(?P<ref>[0-9a-f]{64})/$", views.query_photo, name="query_photo"),
    path("", views.search_page, name="home"),
]
