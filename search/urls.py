from django.urls import path

from . import views

app_name = "search"

urlpatterns = [
    path("products/<str:sku>/", views.product_detail, name="product"),
    path("", views.search_page, name="home"),
]
