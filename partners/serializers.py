"""What the API accepts and answers. Requests are validated here (the photo through the
one upload gate, catalog.uploads); responses are declared field by field."""

from __future__ import annotations

import base64
import binascii
from decimal import Decimal

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from catalog import searchable
from catalog.choices import Currency, Gemstone, Metal
from catalog.models import Category, Product, ProductImage
from catalog.uploads import CheckedImage, UploadError, read_upload
from search.photos import check_query_photo
from search.query import Filters, SearchQuery, SearchResponse

from .errors import APIError, upload_rejected

PRICE_HELP = "In `currency`; null when the shop gives the price on request (shown as “Price on request”)."


# --- requests ----------------------------------------------------------------------------


def filter_fields() -> dict[str, serializers.Field]:
    """The API's filter fields, one per declared attribute (catalog/searchable.py)."""
    fields: dict[str, serializers.Field] = {}
    for attribute in searchable.filters():
        if attribute.kind is searchable.FilterKind.CATEGORY:
            fields[attribute.name] = serializers.SlugField(
                required=False, max_length=100, help_text="A category slug (see /categories/)."
            )
        elif attribute.kind is searchable.FilterKind.CHOICE:
            assert attribute.choices is not None
            fields[attribute.name] = serializers.ChoiceField(
                choices=attribute.choices.choices, required=False, help_text=f"{attribute.label}."
            )
        elif attribute.kind is searchable.FilterKind.RANGE:
            low, high = attribute.params
            for param, bound in ((low, "Lowest"), (high, "Highest")):
                fields[param] = serializers.DecimalField(
                    max_digits=12,
                    decimal_places=2,
                    min_value=Decimal(0),
                    required=False,
                    help_text=f"{bound} {attribute.label.lower()}; products without one are left out.",
                )
        else:
            fields[attribute.name] = serializers.BooleanField(
                required=False, default=False, help_text=f"{attribute.label}."
            )
    return fields


class CatalogFiltersSerializer(serializers.Serializer):
    """Filters shared by search and the product list: the declared attributes."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {**filter_fields(), **super().get_fields()}

    def validate(self, attrs: dict) -> dict:
        for attribute in searchable.filters():
            value = attrs.get(attribute.name)
            is_category = attribute.kind is searchable.FilterKind.CATEGORY
            if is_category and value and not Category.objects.filter(slug=value).exists():
                raise serializers.ValidationError(
                    {attribute.name: [f"No category with the slug {value!r}."]}, code="unknown_category"
                )
            if attribute.kind is searchable.FilterKind.RANGE:
                low, high = (attrs.get(param) for param in attribute.params)
                if low is not None and high is not None and low > high:
                    label = attribute.label.lower()
                    raise serializers.ValidationError(
                        {attribute.params[0]: [f"The minimum {label} is above the maximum {label}."]}
                    )
        return attrs

    def to_filters(self) -> Filters:
        return Filters.from_data(self.validated_data)


class SearchParamsSerializer(CatalogFiltersSerializer):
    text = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=settings.SEARCH_MAX_QUERY_CHARS,
        default="",
        help_text="Words to search for, e.g. 'rose gold oval sapphire ring'.",
    )
    k = serializers.IntegerField(
        min_value=1,
        max_value=settings.SEARCH_MAX_K,
        default=settings.SEARCH_DEFAULT_K,
        help_text="How many products to return.",
    )

    def validate_text(self, text: str) -> str:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise serializers.ValidationError("The text is not valid Unicode.", code="invalid") from None
        return text

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        photo = self.checked_photo(attrs)
        if photo is None and not attrs.get("text"):
            raise serializers.ValidationError(
                "Send a photo (multipart `image` or JSON `image_base64`) or some `text` to search for.",
                code="missing_query",
            )
        attrs["photo"] = photo
        return attrs

    def checked_photo(self, attrs: dict) -> CheckedImage | None:
        """The photo in this request's encoding, through the upload gate; None when absent."""
        raise NotImplementedError

    def to_search_query(self) -> SearchQuery:
        photo: CheckedImage | None = self.validated_data["photo"]
        return SearchQuery(
            image=photo.data if photo else None,
            text=self.validated_data["text"],
            filters=self.to_filters(),
            k=self.validated_data["k"],
        )


class SearchUploadSerializer(SearchParamsSerializer):
    """multipart/form-data: the photo as a file."""

    image = serializers.FileField(
        required=False, allow_empty_file=True, use_url=False, help_text="A JPEG, PNG, WebP, GIF or HEIC photo."
    )

    def checked_photo(self, attrs: dict) -> CheckedImage | None:
        upload = attrs.pop("image", None)
        if upload is None:
            return None
        try:
            return check_query_photo(read_upload(upload))
        except UploadError as error:
            raise upload_rejected(error, "image") from None


class SearchJSONSerializer(SearchParamsSerializer):
    """application/json: the photo as base64 (a data: URL is accepted too)."""

    image_base64 = serializers.CharField(required=False, help_text="The photo's bytes in base64.")

    def checked_photo(self, attrs: dict) -> CheckedImage | None:
        encoded = attrs.pop("image_base64", None)
        if encoded is None:
            return None
        if encoded.startswith("data:"):
            encoded = encoded.partition(",")[2]
        try:
            data = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            raise APIError(
                400, "invalid_base64", "image_base64 is not valid base64.", {"field": "image_base64"}
            ) from None
        try:
            return check_query_photo(data)
        except UploadError as error:
            raise upload_rejected(error, "image_base64") from None


class SimilarParamsSerializer(serializers.Serializer):
    k = serializers.IntegerField(
        min_value=1,
        max_value=settings.SEARCH_MAX_K,
        default=settings.SEARCH_DEFAULT_K,
        help_text="How many similar products to return.",
    )


# --- responses ---------------------------------------------------------------------------


def absolute_url(field: serializers.Field, path: str) -> str:
    """A site path as an absolute URL for the request's host (the path itself without a request)."""
    request = field.context.get("request")
    return request.build_absolute_uri(path) if request is not None else path


@extend_schema_field(OpenApiTypes.URI)
class AbsoluteURLField(serializers.Field):
    """A site path, answered as an absolute URL for the request's host."""

    def __init__(self, **kwargs) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, path: str) -> str:
        return absolute_url(self, path)


@extend_schema_field({"type": "string", "format": "uri", "nullable": True})
class PhotoURLField(serializers.Field):
    """A photo's absolute URL; null without a photo. Not an AbsoluteURLField: it reads a photo, not a path."""

    def __init__(self, **kwargs) -> None:
        super().__init__(read_only=True, allow_null=True, **kwargs)

    def to_representation(self, photo: ProductImage | None) -> str | None:
        if photo is None or not photo.image:
            return None
        return absolute_url(self, photo.image.url)


class ProductPhotoSerializer(serializers.ModelSerializer):
    url = PhotoURLField(source="*")

    class Meta:
        model = ProductImage
        fields = ["url", "width", "height"]
        read_only_fields = fields


class ProductSerializer(serializers.ModelSerializer):
    category: serializers.SlugRelatedField[Category] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    category_name = serializers.CharField(source="category.name", read_only=True)
    in_stock = serializers.BooleanField(read_only=True)
    image_url = PhotoURLField(source="primary_image", help_text="The first photo.")
    images = ProductPhotoSerializer(many=True, read_only=True)
    url = AbsoluteURLField(source="get_absolute_url", help_text="The product's page in the shop.")
    price = serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, help_text=PRICE_HELP)

    class Meta:
        model = Product
        fields = [
            "sku",
            "title",
            "description",
            "category",
            "category_name",
            "metal",
            "gemstone",
            "price",
            "currency",
            "in_stock",
            "image_url",
            "images",
            "url",
        ]
        read_only_fields = fields


class CategorySerializer(serializers.ModelSerializer):
    product_count = serializers.IntegerField(read_only=True, help_text="Active products in the category.")

    class Meta:
        model = Category
        fields = ["slug", "name", "product_count"]
        read_only_fields = fields


class PredictedCategorySerializer(serializers.Serializer):
    name = serializers.CharField()
    slug = serializers.CharField(allow_null=True)
    confidence = serializers.FloatField(help_text="Share of the nearest catalog photos in this category (0-1).")


class SearchResultSerializer(serializers.Serializer):
    sku = serializers.CharField(source="product.sku")
    title = serializers.CharField(source="product.title")
    category = serializers.CharField(source="product.category.slug")
    category_name = serializers.CharField(source="product.category.name")
    metal = serializers.ChoiceField(choices=Metal.choices, source="product.metal")
    gemstone = serializers.ChoiceField(choices=Gemstone.choices, source="product.gemstone")
    price = serializers.DecimalField(
        max_digits=12, decimal_places=2, source="product.price", allow_null=True, help_text=PRICE_HELP
    )
    currency = serializers.ChoiceField(choices=Currency.choices, source="product.currency")
    in_stock = serializers.BooleanField(source="product.in_stock")
    score = serializers.FloatField(help_text="Higher is better; comparable within one response.")
    score_breakdown = serializers.DictField(
        child=serializers.FloatField(),
        source="breakdown",
        help_text="Similarity and the boosts that make up the score.",
    )
    reason = serializers.CharField(help_text="Why this product matched, in words.")
    image_url = PhotoURLField(source="matched_image", help_text="The photo that matched best.")
    url = AbsoluteURLField(source="product.get_absolute_url", help_text="The product's page in the shop.")


FACETS_SCHEMA = {
    "type": "object",
    "description": "Per facet (category, metal, gemstone, price, in_stock): its values with the number of "
    "products that selecting each leaves, the other filters applied. A price bucket's value is 'min-max'.",
    "additionalProperties": {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {"value": {"type": "string"}, "label": {"type": "string"}, "count": {"type": "integer"}},
            "required": ["value", "label", "count"],
        },
    },
}


class UnderstoodSerializer(serializers.Serializer):
    """What the words were read as: each part boosts matching products (never a filter)."""

    category = serializers.CharField(required=False, help_text="A category slug.")
    metal = serializers.CharField(required=False, help_text="gold, silver or platinum.")
    metal_color = serializers.CharField(required=False, help_text="yellow, white, rose or two-tone (gold).")
    gemstone = serializers.CharField(required=False, help_text="A gemstone value; 'none' for plain / no stones.")
    shape = serializers.CharField(required=False)
    price_min = serializers.CharField(required=False)
    price_max = serializers.CharField(required=False)
    currency = serializers.CharField(required=False)


class SearchResponseSerializer(serializers.Serializer):
    model_version = serializers.CharField(help_text="The model that produced the vectors compared.")
    took_ms = serializers.FloatField()
    strategy = serializers.CharField(help_text="How candidates were retrieved (hnsw, exact-filtered, ...).")
    matched = serializers.BooleanField(
        help_text="False when nothing in the catalogue matches the words (results are then empty)."
    )
    searched_for = serializers.CharField(
        source="corrected_text",
        allow_null=True,
        help_text="The words searched when a typo was corrected ('showing results for ...'); null otherwise.",
    )
    understood = serializers.SerializerMethodField()
    facets = serializers.SerializerMethodField()
    total_matching = serializers.IntegerField(
        allow_null=True, help_text="Products matching the query under the filters (results show the best k)."
    )
    predicted_category = serializers.SerializerMethodField()
    results = SearchResultSerializer(many=True)

    @extend_schema_field(UnderstoodSerializer)
    def get_understood(self, response: SearchResponse) -> dict:
        return response.understood.as_dict() if response.understood is not None else {}

    @extend_schema_field(FACETS_SCHEMA)
    def get_facets(self, response: SearchResponse) -> dict:
        return {
            name: [{key: value for key, value in item.items() if key in ("value", "label", "count")} for item in items]
            for name, items in response.facets.items()
        }

    @extend_schema_field(PredictedCategorySerializer(allow_null=True))
    def get_predicted_category(self, response: SearchResponse) -> dict | None:
        if response.predicted_category is None:
            return None
        name, confidence = response.predicted_category
        slug = Category.objects.filter(name=name).values_list("slug", flat=True).first()
        return {"name": name, "slug": slug, "confidence": round(float(confidence), 4)}


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. validation_error, file_too_large, throttled.")
    message = serializers.CharField(help_text="For a person.")
    details = serializers.DictField(help_text="Field errors, limits, the scope needed, ...")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
