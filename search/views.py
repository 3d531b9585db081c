from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from catalog.models import Product
from catalog.uploads import UploadError, read_upload
from ml.errors import ImageDecodeError

from .forms import SearchForm
from .photos import PhotoStoreUnavailable, check_query_photo, find_query_photo, keep_query_photo
from .query import SearchQuery, SearchUnavailable, search
from .ratelimit import limit_shopper_searches

logger = logging.getLogger(__name__)
SIMILAR_ON_PRODUCT_PAGE = 8


def _render(request: HttpRequest, context: dict, status: int = 200) -> HttpResponse:
    return render(request, "search/search.html", context, status=status)


@require_http_methods(["GET", "POST"])
@limit_shopper_searches
def search_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        return _upload_photo(request)
    form = SearchForm(request.GET or None)
    context: dict = {"form": form, "max_upload_mb": settings.MAX_UPLOAD_BYTES // 1_000_000}
    if not request.GET:
        return _render(request, context)
    if not form.is_valid():
        return _render(request, context, status=400)
    data = form.cleaned_data
    photo = None
    if data.get("image_ref"):
        stored = find_query_photo(data["image_ref"])
        photo = stored.data if stored else None
        if photo is None:
            context["error"] = "Your photo has expired from our short-term memory: please upload it again."
            return _render(request, context, status=410)
        context["query_photo"] = data["image_ref"]
    similar_to = None
    if data.get("similar"):
        similar = Product.objects.filter(sku=data["similar"], is_active=True).first()
        if similar is None:
            context["error"] = f"No product with the reference {data['similar']!r}."
            return _render(request, context, status=404)
        similar_to, context["similar_product"] = similar.pk, similar
    if not (photo or data.get("text") or similar_to):
        context["error"] = "Type a few words or add a photo to search."
        return _render(request, context)
    query = SearchQuery(
        image=photo,
        text=data.get("text") or "",
        filters=form.filters(),
        k=data.get("k") or settings.SEARCH_DEFAULT_K,
        similar_to=similar_to,
    )
    try:
        context["response"] = search(query)
    except SearchUnavailable as exc:
        context["error"] = str(exc)
        return _render(request, context, status=503)
    except ImageDecodeError as exc:  # the gate passed it, the encoder could not read it: say so, never 500
        logger.warning("query photo %s could not be decoded: %s", data.get("image_ref"), exc)
        context["error"] = "We could not read your photo. Please upload it again, or try another photo."
        return _render(request, context, status=400)
    except DatabaseError:
        logger.exception("search failed: database unavailable")
        context["error"] = "Search is briefly unavailable. Please try again in a few seconds."
        response = _render(request, context, status=503)
        response["Retry-After"] = "5"
        return response
    context["query"] = query
    return _render(request, context)


def _upload_photo(request: HttpRequest) -> HttpResponse:
    """Validate the photo, keep a small rendition briefly by its hash (search/photos.py),
    and redirect to a plain GET."""
    form = SearchForm(request.POST)
    context: dict = {"form": form, "max_upload_mb": settings.MAX_UPLOAD_BYTES // 1_000_000}
    upload = request.FILES.get("image")
    if upload is None:
        if form.is_valid() and form.has_query():
            return redirect(_search_url(form.cleaned_data))
        context["error"] = "Choose a photo to search with, or type a few words."
        return _render(request, context, status=400)
    try:
        kept = keep_query_photo(check_query_photo(read_upload(upload)))
    except UploadError as exc:
        context["error"] = exc.message
        return _render(request, context, status=exc.status)
    except PhotoStoreUnavailable as exc:
        context["error"] = f"{exc} Please try again in a few seconds, or search with words."
        response = _render(request, context, status=503)
        response["Retry-After"] = "5"
        return response
    data = form.cleaned_data if form.is_valid() else {}
    return redirect(_search_url({**data, "image_ref": kept.ref}))


def _search_url(data: dict) -> str:
    params = {key: value for key, value in data.items() if value not in (None, "", False)}
    return "/?" + urlencode(params)


@require_GET
def query_photo(request: HttpRequest, ref: str) -> HttpResponse:
    """The shopper's own photo, shown above their results."""
    photo = find_query_photo(ref)
    if photo is None:
        raise Http404("photo expired")
    response = HttpResponse(photo.data, content_type=photo.content_type)
    response["Cache-Control"] = f"private, max-age={settings.QUERY_PHOTO_SECONDS}"
    return response


@require_GET
def product_detail(request: HttpRequest, sku: str) -> HttpResponse:
    product = get_object_or_404(
        Product.objects.select_related("category").prefetch_related("images"), sku=sku, is_active=True
    )
    similar = None
    try:
        similar = search(SearchQuery(similar_to=product.pk, k=SIMILAR_ON_PRODUCT_PAGE))
    except (SearchUnavailable, DatabaseError):
        logger.warning("no similar products for %s: search unavailable", sku)
    return render(request, "search/product.html", {"product": product, "similar": similar})
