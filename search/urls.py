from django.urls import path, re_path, register_converter

from catalog.validators import SkuConverter

from . import views

app_name = "search"
register_converter(SkuConverter, "sku")

urlpatterns = [
    path("products/<sku:sku>/", views.product_detail, name="product"),
    re_path(r"^query-photo/(?P<ref>[0-9a-f]{64})/$", views.query_photo, name="query_photo"),
    path("", views.search_page, name="home"),
]
