"""Web-facing protections that are not a view's business: the Content-Security-Policy
(with the API docs' inline blocks allowed by hash), a request-body cap in front of the
form parsers, product photos served with safe headers, and the client address that the
admin's login rate limit (django-axes) counts by."""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import re
from pathlib import PurePosixPath

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.static import serve

from catalog.photos import is_referenced
from catalog.uploads import EXTENSION_CONTENT_TYPES

# Inline <script>/<style> blocks (no src): their exact text is what a hash allows.
_INLINE_BLOCK = re.compile(rb"<(script|style)(?![^>]*\bsrc=)[^>]*>(.*?)</\1>", re.S | re.I)


def _sha256_source(text: bytes) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text).digest()).decode() + "'"


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware; on the API docs pages (drf-spectacular's Swagger UI and
    Redoc templates carry an inline <script> and <style>) it allows exactly those blocks
    by hash, plus the asset origins of `CSP_DOCS_EXTRA_SOURCES`, and nothing else."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        prefixes = tuple(getattr(settings, "CSP_DOCS_PATH_PREFIXES", ()))
        if report_only or not prefixes or not request.path_info.startswith(prefixes):
            return parts
        if "html" not in response.get("Content-Type", "") or not isinstance(response, HttpResponse):
            # A streaming response (the only other kind) has no `.content` to hash.
            return parts
        update: dict[str, list[str]] = {
            key: list(value) for key, value in getattr(settings, "CSP_DOCS_EXTRA_SOURCES", {}).items()
        }
        # Redoc injects <style> elements at run time (styled-components): that page needs
        # inline styles (never inline scripts); a hash next to 'unsafe-inline' would void it.
        inline_styles = request.path_info.startswith(tuple(getattr(settings, "CSP_INLINE_STYLE_PATH_PREFIXES", ())))
        for kind, body in _INLINE_BLOCK.findall(response.content):
            if kind.lower() == b"script":
                update.setdefault("script-src", []).append(_sha256_source(body))
            elif not inline_styles:
                update.setdefault("style-src", []).append(_sha256_source(body))
        if inline_styles:
            update.setdefault("style-src", []).append("'unsafe-inline'")
        merged = dict(parts.update or {})
        for directive, sources in update.items():
            merged[directive] = [*merged.get(directive, []), *sources]
        parts.update = merged
        return parts


class RequestBodyLimitMiddleware:
    """Refuse a body far larger than any photo before Django parses it to a temp file.

    The limit is generous (a few photos' worth): a slightly oversized photo still reaches
    the page, which explains the size limit in its own words. The API bounds its bodies
    in its parsers, with its own error shape, so /api/ is left to them.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if not request.path_info.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            limit = (
                settings.REQUEST_MAX_BYTES_ADMIN
                if request.path_info.startswith("/admin/")
                else settings.REQUEST_MAX_BYTES
            )
            if length > limit:
                return HttpResponse(
                    f"<!doctype html><title>Too large</title><p>The upload is larger than {limit / 1e6:.0f} MB. "
                    f"Photos may be up to {settings.MAX_UPLOAD_BYTES / 1e6:.0f} MB.</p>",
                    status=413,
                )
        return self.get_response(request)


# C0 control characters and DEL. Query values may hold tab and line breaks (a pasted
# description); nothing else of these belongs in an address, and PostgreSQL refuses NUL.
_CONTROL_IN_PATH = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_IN_QUERY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ControlCharacterMiddleware:
    """No path or query value with a control character reaches a view (or the database):
    the path gets a 404 (no such page can exist), the query a 400 that says why; under
    /api/ both in the API's error shape."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if _CONTROL_IN_PATH.search(request.path_info):
            return self._refuse(request, 404, "not_found", "No such page: the address holds a control character.")
        if any(_CONTROL_IN_QUERY.search(part) for key, values in request.GET.lists() for part in (key, *values)):
            return self._refuse(
                request,
                400,
                "invalid_characters",
                "The address's query holds a control character (such as NUL), which no search term can contain.",
            )
        return self.get_response(request)

    @staticmethod
    def _refuse(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            return JsonResponse({"error": {"code": code, "message": message, "details": {}}}, status=status)
        return HttpResponse(
            f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{status} · shop-search</title>'
            f'<p role="alert">{message}</p></html>',
            status=status,
        )


PHOTO_CONTENT_TYPES = {f".{extension}": content_type for extension, content_type in EXTENSION_CONTENT_TYPES.items()}


def serve_product_photo(request: HttpRequest, path: str) -> HttpResponseBase:
    """A stored product photo: the right image type (never guessed), never sniffed, never
    a document (sandboxed, no scripts), shown inline under its own random name.

    Only while a photo row names the file (one indexed lookup): a deleted product's photos
    stop being served even before their files are gone, and an orphan never is."""
    if not is_referenced(path):
        raise Http404("no such photo")
    response = serve(request, path, document_root=str(settings.MEDIA_ROOT))
    suffix = PurePosixPath(path).suffix.lower()
    response["Content-Type"] = (
        PHOTO_CONTENT_TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream"
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Disposition"] = f'inline; filename="{PurePosixPath(path).name}"'
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-site"
    # Names are content hashes: a name never changes what it holds.
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def client_ip(request: HttpRequest) -> str | None:
    """The client's address for the login rate limit: REMOTE_ADDR, or behind
    TRUSTED_PROXY_COUNT reverse proxies, the address the outermost one saw."""
    proxies = getattr(settings, "TRUSTED_PROXY_COUNT", 0)
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
