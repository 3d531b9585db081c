from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.files.base import ContentFile
from django.core.files.images import get_image_dimensions
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils.html import format_html
from django.utils.text import Truncator

from .choices import Gemstone, IndexState
from .models import Category, Product, ProductImage
from .services import delete_products, mark_products_for_reembedding, missing_photo_files
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
        # The ImageField fills width/height from the stored bytes: if it could not read them,
        # say so here rather than fail the save on a NULL width (an IntegrityError 500).
        if get_image_dimensions(ContentFile(checked.data)) != (checked.width, checked.height):
            raise forms.ValidationError(
                "This photo's size cannot be read back. Export it again as JPEG or PNG.", code="corrupt_image"
            )
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


class ProductAdminForm(forms.ModelForm):
    """Optimistic concurrency: the form carries the `updated_at` it was opened at; saving
    over a newer version (another merchant, an import) is a form error that says what
    changed, never a silent overwrite. Saving the form again, having seen it, overwrites."""

    loaded_version = forms.CharField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Product
        fields = [  # the admin's fieldsets choose what is shown
            "sku",
            "title",
            "description",
            "category",
            "metal",
            "metal_text",
            "gemstone",
            "gemstone_text",
            "price",
            "currency",
            "stock",
            "is_active",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["loaded_version"].initial = self.instance.updated_at.isoformat()

    def clean(self):
        cleaned = super().clean()
        if not self.instance.pk:
            return cleaned
        # Locked until the admin's transaction ends: a concurrent saver waits here, then
        # sees this save's new version.
        rows = Product.objects.filter(pk=self.instance.pk)
        current = (rows.select_for_update() if connection.in_atomic_block else rows).first()
        if current is None:
            raise forms.ValidationError("This product was deleted by someone else while you were editing it.")
        seen = cleaned.get("loaded_version")
        now = current.updated_at.isoformat()
        if seen and seen != now:
            changed = [
                f"{self.fields[name].label or name}: {getattr(current, name)}"
                for name in ("sku", "title", "description", "price", "stock", "is_active")
                if name in self.fields and name in cleaned and cleaned[name] != getattr(current, name)
            ]
            self.data = self.data.copy()
            self.data["loaded_version"] = now  # saving again, having seen this, overwrites
            raise forms.ValidationError(
                "Someone else saved this product (%(when)s) since you opened it. Their values: %(changed)s. "
                "Your changes are not saved: check them below and save again to overwrite, or reload the page.",
                code="stale_product",
                params={"when": current.updated_at.strftime("%Y-%m-%d %H:%M:%S %Z"), "changed": "; ".join(changed)},
            )
        return cleaned


class IndexStateFilter(admin.SimpleListFilter):
    """Index state as the column shows it: a product is only as indexed as its worst photo."""

    title = "index"
    parameter_name = "index"

    def lookups(self, request, model_admin):
        return IndexState.choices

    def queryset(self, request, queryset):
        photos = ProductImage.objects.filter(product=OuterRef("pk"))
        failed = Q(embedding_error__gt="") | Exists(photos.filter(embedding_error__gt=""))
        pending = Q(embedding_dirty=True) | Exists(photos.filter(embedding_dirty=True))
        if self.value() == IndexState.FAILED:
            return queryset.filter(failed)
        if self.value() == IndexState.PENDING:
            return queryset.filter(pending).exclude(failed)
        if self.value() == IndexState.INDEXED:
            return queryset.exclude(failed).exclude(pending)
        return queryset


INDEX_COLOURS = {IndexState.INDEXED: "#2a7a2a", IndexState.PENDING: "#8a5a00", IndexState.FAILED: "#b00"}


def index_badge_html(state: IndexState, errors: list[str], limit: int | None = 48) -> str:
    """'indexed', 'pending' or 'failed (reason)'; in a list the reason is cut, whole on hover."""
    reason = "; ".join(error for error in errors if error)
    shown = Truncator(reason or "unknown error").chars(limit) if limit else reason or "unknown error"
    text = f"failed ({shown})" if state == IndexState.FAILED else state
    return format_html('<span style="color:{}" title="{}">{}</span>', INDEX_COLOURS[state], reason, text)


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
            return index_badge_html(IndexState.FAILED, ["file missing: upload or import it again"])
        dirty = IndexState.PENDING if obj.embedding_dirty else IndexState.INDEXED
        state = IndexState.FAILED if obj.embedding_error else dirty
        return index_badge_html(state, [obj.embedding_error] if obj.embedding_error else [])


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = [
        "thumb",
        "sku",
        "title",
        "price_display",
        "category",
        "attributes",
        "is_active",
        "index_badge",
    ]
    list_display_links = ["thumb", "sku", "title"]
    list_filter = ["category", "metal", "gemstone", "is_active", IndexStateFilter]
    search_fields = ["sku", "title"]
    list_select_related = ["category"]
    list_per_page = 50
    form = ProductAdminForm
    inlines = [ProductImageInline]
    actions = ["reembed_selected"]
    readonly_fields = ["legacy_sku", "created_at", "updated_at", "index_status", "embedding_marked_at"]
    fieldsets = [
        (None, {"fields": ["sku", "legacy_sku", "title", "description", "category", "loaded_version"]}),
        ("Attributes", {"fields": [("metal", "metal_text"), ("gemstone", "gemstone_text")]}),
        ("Sales", {"fields": [("price", "currency"), "stock", "is_active"]}),
        (
            "Search index",
            {"fields": ["index_status", "embedding_marked_at", "created_at", "updated_at"]},
        ),
    ]

    class Media:
        css = {"all": ["css/admin-catalog.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("images")

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not ProductImage:
            return super().save_formset(request, form, formset, change)
        images = formset.save(commit=False)  # fills formset.deleted_objects
        for image in formset.deleted_objects:
            image.delete()
        for image in images:
            try:
                with transaction.atomic():
                    image.save()
            except IntegrityError as exc:
                if "unique_photo_per_product" not in str(exc):
                    raise
                # Attached by someone else a moment ago (after this form was checked): it is there.
                self.message_user(request, "One of the photos was already attached to the product.", messages.INFO)
        formset.save_m2m()
        return None

    def delete_model(self, request, obj: Product) -> None:
        delete_products([obj.pk])

    def delete_queryset(self, request, queryset) -> None:
        delete_products(queryset.values_list("pk", flat=True))

    @admin.display(description="Photo")
    def thumb(self, obj: Product) -> str:
        images = list(obj.images.all())
        return thumbnail(images[0] if images else None)

    @admin.display(description="Metal · stone", ordering="metal")
    def attributes(self, obj: Product) -> str:
        if obj.gemstone == Gemstone.NONE:
            return obj.get_metal_display()
        return f"{obj.get_metal_display()} · {obj.get_gemstone_display()}"

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj: Product) -> str:
        if obj.price is None:
            return "Price on request"
        amount = f"{obj.price:,.2f}".removesuffix(".00")  # VND 13,144,000; INR 1,299.50
        return f"{obj.currency} {amount}"

    @admin.display(description="Index")
    def index_badge(self, obj: Product) -> str:
        return index_badge_html(*self._index_state(obj))

    @admin.display(description="Index")
    def index_status(self, obj: Product) -> str:
        if obj.pk is None:
            return "pending (a new product is indexed once saved)"
        return index_badge_html(*self._index_state(obj), limit=None)

    @staticmethod
    def _index_state(obj: Product) -> tuple[IndexState, list[str]]:
        errors = [
            obj.embedding_error,
            *(f"photo {i.position}: {i.embedding_error}" for i in obj.images.all() if i.embedding_error),
        ]
        missing = missing_photo_files(obj.images.all())
        if missing:
            reason = (
                "photo file missing: import the product again to restore it"
                if len(missing) == 1
                else f"{len(missing)} photo files missing: import the product again to restore them"
            )
            return IndexState.FAILED, [reason, *errors]
        return obj.index_state, errors

    @admin.action(description="Re-embed selected products (photos and text)")
    def reembed_selected(self, request, queryset):
        count = mark_products_for_reembedding(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} products marked for re-embedding.", messages.SUCCESS)
