from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from catalog import searchable
from catalog.models import Category, Product
from catalog.uploads import UploadError, read_upload
from ml.errors import ImageDecodeError

from .forms import SearchForm
from .photos import PhotoStoreUnavailable, check_query_photo, find_query_photo, keep_query_photo
from .query import SearchQuery, SearchResponse, SearchUnavailable, search
from .ratelimit import limit_shopper_searches
from .understanding import Understood

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
    context.update(_words_context(request, context["response"]))
    return _render(request, context)


def _url(request: HttpRequest, **changes: str | None) -> str:
    """This page's URL with some parameters changed (None removes one); back to page 1."""
    params = {key: value for key, value in request.GET.items() if value not in ("", None)}
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return "/?" + urlencode(params)


def _without_words(text: str, phrase: str) -> str:
    drop = phrase.lower().split()
    return " ".join(word for word in text.split() if word.lower().strip(",.") not in drop)


_CHIP_NAMES = {"category": "Category", "metal": "Metal", "gemstone": "Stone", "shape": "Shape", "price": "Price"}


def _chips(request: HttpRequest, understood: Understood) -> list[dict]:
    """One chip per understood part: what it was read as, a link that drops its words from the
    query, and (where one filter value says the same) a link that makes it a filter."""
    text = understood.searched
    names = dict(Category.objects.values_list("slug", "name"))
    chips = []
    for key, phrase in understood.phrases.items():
        filter_params: dict[str, str] = {}
        if key == "category" and understood.category:
            label, filter_params = (
                names.get(understood.category, understood.category),
                {"category": understood.category},
            )
        elif key == "metal":
            metals = understood.metals
            label = " ".join(filter(None, [understood.metal_color, understood.metal]))
            if len(metals) == 1:
                filter_params = {"metal": metals[0]}
        elif key == "gemstone" and understood.gemstone:
            label = searchable.by_name(["gemstone"])["gemstone"].choice_label(understood.gemstone)
            filter_params = {"gemstone": understood.gemstone}
        elif key == "price":
            label = phrase
            filter_params = {
                name: str(value)
                for name, value in (("price_min", understood.price_min), ("price_max", understood.price_max))
                if value is not None
            }
        else:
            label = phrase
        already = all(request.GET.get(name) == value for name, value in filter_params.items())
        chips.append(
            {
                "name": _CHIP_NAMES.get(key, key.title()),
                "label": label,
                "remove_url": _url(request, text=_without_words(text, phrase) or None),
                "filter_url": _url(request, **filter_params) if filter_params and not already else None,
            }
        )
    return chips


def _facet_groups(request: HttpRequest, response: SearchResponse) -> list[dict]:
    """The facets as links: each selects its value (or clears it when selected)."""
    groups = []
    declared = searchable.by_name(response.facets)
    for name, values in response.facets.items():
        attribute = declared[name]
        entries = []
        for item in values:
            if attribute.kind is searchable.FilterKind.RANGE:
                low, high = attribute.params
                selected = request.GET.get(low, "") == (item.get(low) or "") and request.GET.get(high, "") == (
                    item.get(high) or ""
                )
                url = _url(request, **{low: item.get(low), high: item.get(high)})
                clear = _url(request, **{low: None, high: None})
            else:
                flag = attribute.kind is searchable.FilterKind.FLAG
                selected = request.GET.get(name) in (("on", "true") if flag else (item["value"],))
                url = _url(request, **{name: "on" if flag else item["value"]})
                clear = _url(request, **{name: None})
            entries.append(
                {
                    "label": item["label"],
                    "count": item["count"],
                    "url": clear if selected else url,
                    "selected": selected,
                }
            )
        if entries:
            groups.append({"label": attribute.label, "values": entries})
    return groups


def _words_context(request: HttpRequest, response: SearchResponse) -> dict:
    context: dict = {"facet_groups": _facet_groups(request, response)}
    if response.understood is not None:
        context["chips"] = _chips(request, response.understood)
        if response.corrected_text:
            context["showing_for"] = response.corrected_text
            context["showing_for_url"] = _url(request, text=response.corrected_text)
    if not response.matched:
        context["shop_categories"] = [
            {"name": name, "url": "/?" + urlencode({"text": name.lower()})}
            for name in Category.objects.filter(products__is_active=True).distinct().values_list("name", flat=True)
        ]
    return context


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
