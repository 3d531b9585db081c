from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.html import format_html

from .choices import IndexState
from .models import Category, Product, ProductImage
from .services import mark_products_for_reembedding, missing_photo_files
from .uploads import UploadError, check_image_upload, read_upload

THUMBNAIL = '<img src="{}" alt="" style="width:{}px;height:{}px;object-fit:contain;background:#fff;border-radius:4px">'


def thumbnail(image: ProductImage | None, size: int = 64) -> str:
    if image is None or not image.image:
        return "—"
    return format_html(THUMBNAIL, image.image.url, size, size)


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name"]


class ProductImageForm(forms.ModelForm):
    """Admin uploads pass the same gate as the shopper page and the API."""

    class Meta:
        model = ProductImage
        fields = ["image", "position", "alt_text"]
        # A plain file field: Django's ImageField would open the file with every Pillow
        # format and answer "Upload a valid image" before the gate can say why.
        field_classes = {"image": forms.FileField}

    def clean_image(self):
        upload = self.cleaned_data.get("image")
        if upload is None or not hasattr(upload, "content_type"):
            return upload  # unchanged file
        try:
            checked = check_image_upload(read_upload(upload))
        except UploadError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None
        self.instance.content_hash = checked.sha256
        self.instance.format = checked.format
        # Store exactly what was checked (the gate drops bytes a phone appends after the image).
        return SimpleUploadedFile(upload.name, checked.data, content_type=upload.content_type)

    def clean(self):
        cleaned = super().clean()
        product = self.instance.product if self.instance.product_id else None
        if product and self.instance.content_hash and "image" in self.changed_data:
            duplicate = ProductImage.objects.filter(product=product, content_hash=self.instance.content_hash)
            if duplicate.exclude(pk=self.instance.pk).exists():
                raise forms.ValidationError("This photo is already attached to the product.")
        return cleaned


class ProductImageInline(admin.TabularInline):
    model = ProductImage
    form = ProductImageForm
    extra = 1
    fields = ["preview", "image", "position", "alt_text", "width", "height", "index_state"]
    readonly_fields = ["preview", "width", "height", "index_state"]
    ordering = ["position", "id"]

    @admin.display(description="Preview")
    def preview(self, obj: ProductImage) -> str:
        return thumbnail(obj, 96)

    @admin.display(description="Index")
    def index_state(self, obj: ProductImage) -> str:
        if obj.pk and obj.file_missing:
            return format_html('<span style="color:#b00">{}</span>', "file missing: upload or import it again")
        if obj.embedding_error:
            return format_html(
                '<span title="{}" style="color:#b00">failed: {}</span>', obj.embedding_error, obj.embedding_error[:80]
            )
        return "pending" if obj.embedding_dirty else "indexed"


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = [
        "thumb",
        "sku",
        "title",
        "price_display",
        "category",
        "metal",
        "gemstone",
        "is_active",
        "index_badge",
    ]
    list_display_links = ["thumb", "sku", "title"]
    list_filter = ["category", "metal", "gemstone", "is_active", "embedding_dirty"]
    search_fields = ["sku", "title"]
    list_select_related = ["category"]
    list_per_page = 50
    inlines = [ProductImageInline]
    actions = ["reembed_selected"]
    readonly_fields = ["created_at", "updated_at", "embedding_dirty", "embedding_marked_at", "embedding_error"]
    fieldsets = [
        (None, {"fields": ["sku", "title", "description", "category"]}),
        ("Attributes", {"fields": [("metal", "metal_text"), ("gemstone", "gemstone_text")]}),
        ("Sales", {"fields": [("price", "currency"), "stock", "is_active"]}),
        (
            "Search index",
            {"fields": ["embedding_dirty", "embedding_marked_at", "embedding_error", "created_at", "updated_at"]},
        ),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("images")

    @admin.display(description="Photo")
    def thumb(self, obj: Product) -> str:
        images = list(obj.images.all())
        return thumbnail(images[0] if images else None)

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj: Product) -> str:
        return f"{obj.currency} {obj.price:,.2f}"

    @admin.display(description="Index")
    def index_badge(self, obj: Product) -> str:
        missing = missing_photo_files(obj.images.all())
        if missing:
            return format_html(
                '<span style="color:#b00" title="{}">●&nbsp;photo file missing</span>',
                f"{len(missing)} photo file(s) not in the media folder: import the product again to restore them",
            )
        state = obj.index_state
        colour = {IndexState.INDEXED: "#2a7a2a", IndexState.PENDING: "#a66d00", IndexState.FAILED: "#b00"}[state]
        errors = "; ".join(filter(None, [obj.embedding_error, *(i.embedding_error for i in obj.images.all())]))
        return format_html('<span style="color:{}" title="{}">●&nbsp;{}</span>', colour, errors, state)

    @admin.action(description="Re-embed selected products (photos and text)")
    def reembed_selected(self, request, queryset):
        count = mark_products_for_reembedding(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} products marked for re-embedding.", messages.SUCCESS)
