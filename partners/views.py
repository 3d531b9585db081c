"""The partner API: thin views over the same search service and catalog as the shop pages."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django_filters import FilterSet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.models import Category, Product
from catalog.validators import SKU_URL_REGEX
from search.query import SearchQuery, search

from .auth import RecordsKeyUse
from .choices import Scope
from .filtersets import ListFilterBackend, product_filterset
from .parsers import BoundedJSONParser, BoundedMultiPartParser
from .schema import RETRY_AFTER, error_responses
from .serializers import (
    CategorySerializer,
    ProductSerializer,
    SearchJSONSerializer,
    SearchParamsSerializer,
    SearchResponseSerializer,
    SearchUploadSerializer,
    SimilarParamsSerializer,
)


class SearchView(RecordsKeyUse, GenericAPIView):
    """Search by photo and/or words: the same service (search.query.search) as the shop page."""

    required_scope = Scope.SEARCH
    throttle_scope = "search"
    parser_classes = [BoundedMultiPartParser, BoundedJSONParser]
    pagination_class = None

    def get_serializer_class(self) -> type[SearchParamsSerializer]:
        request = getattr(self, "request", None)
        if request is not None and (request.content_type or "").startswith("multipart/"):
            return SearchUploadSerializer
        return SearchJSONSerializer

    @extend_schema(
        operation_id="search",
        summary="Search by photo and/or words",
        description="Send a photo (multipart `image`, or JSON `image_base64`), some `text`, or both, "
        "with optional filters. Answers the `k` best products, best first.",
        request={"multipart/form-data": SearchUploadSerializer, "application/json": SearchJSONSerializer},
        responses={200: SearchResponseSerializer, **error_responses(400, 413, 415)},
        parameters=[RETRY_AFTER],
        examples=[
            OpenApiExample(
                "Words and filters",
                request_only=True,
                media_type="application/json",
                value={
                    "text": "rose gold oval sapphire ring",
                    "metal": "rose_gold",
                    "price_max": "50000.00",
                    "in_stock": True,
                    "k": 10,
                },
            ),
        ],
    )
    def post(self, request: Request) -> Response:
        params = self.get_serializer(data=request.data)
        assert isinstance(params, SearchParamsSerializer)  # see get_serializer_class
        params.is_valid(raise_exception=True)
        response = search(params.to_search_query())
        return Response(SearchResponseSerializer(response, context=self.get_serializer_context()).data)


class ProductViewSet(RecordsKeyUse, viewsets.ReadOnlyModelViewSet):
    """Active products, by SKU; `similar` answers like search (it needs the search scope)."""

    required_scope = Scope.CATALOG
    throttle_scope = "catalog"
    serializer_class = ProductSerializer
    filter_backends = [ListFilterBackend]
    lookup_field = "sku"
    lookup_value_regex = SKU_URL_REGEX  # only valid SKUs reach the database; anything else is a 404
    cursor_ordering = ("sku",)

    @property
    def filterset_class(self) -> type[FilterSet]:
        return product_filterset()

    def get_queryset(self) -> QuerySet[Product]:
        return Product.objects.filter(is_active=True).select_related("category").prefetch_related("images")

    def get_object(self) -> Product:
        try:
            return super().get_object()
        except Http404:
            raise NotFound(f"No product with the SKU {self.kwargs[self.lookup_field]!r}.") from None

    @extend_schema(
        summary="List active products",
        responses={200: ProductSerializer(many=True), **error_responses(400)},
    )
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="One active product", responses={200: ProductSerializer, **error_responses(404)})
    def retrieve(self, request: Request, *args, **kwargs) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(
        operation_id="products_similar",
        summary="Products that look like this one",
        parameters=[SimilarParamsSerializer, RETRY_AFTER],
        responses={200: SearchResponseSerializer, **error_responses(400, 404)},
    )
    @action(detail=True, methods=["get"], required_scope=Scope.SEARCH, throttle_scope="search", pagination_class=None)
    def similar(self, request: Request, sku: str) -> Response:
        params = SimilarParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        product = self.get_object()
        response = search(SearchQuery(similar_to=product.pk, k=params.validated_data["k"]))
        return Response(SearchResponseSerializer(response, context=self.get_serializer_context()).data)


class CategoryViewSet(RecordsKeyUse, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Categories with their number of active products: the values of the `category` filter."""

    required_scope = Scope.CATALOG
    throttle_scope = "catalog"
    serializer_class = CategorySerializer
    cursor_ordering = ("name",)
    queryset = Category.objects.annotate(product_count=Count("products", filter=Q(products__is_active=True)))

    @extend_schema(summary="List categories", responses={200: CategorySerializer(many=True), **error_responses(400)})
    def list(self, request: Request, *args, **kwargs) -> Response:
        return super().list(request, *args, **kwargs)
