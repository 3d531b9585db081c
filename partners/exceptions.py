"""One error shape for every API response that is not a success:

    {"error": {"code": "machine_readable", "message": "For a person.", "details": {...}}}

Domain and Django exceptions are mapped to HTTP here, so views stay free of try/except.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from catalog.uploads import UploadError
from ml.errors import ImageDecodeError, ModelLoadError
from search.query import SearchUnavailable

from .errors import APIError, error_body, upload_rejected

logger = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 5
INDEXING_RETRY_SECONDS = 30
MODEL_RETRY_SECONDS = 60


def _as_api_exception(exc: Exception) -> Exception:
    """Map what the domain, the database and Django raise onto API errors."""
    if isinstance(exc, UploadError):
        return upload_rejected(exc, "image")
    if isinstance(exc, ImageDecodeError):
        return APIError(400, "corrupt_image", f"The image could not be read: {exc}", {"field": "image"})
    if isinstance(exc, SearchUnavailable):
        return APIError(503, "search_unavailable", str(exc), retry_after=INDEXING_RETRY_SECONDS)
    if isinstance(exc, ModelLoadError):
        logger.error("API request failed: the model cannot be loaded: %s", exc)
        return APIError(
            503,
            "model_unavailable",
            "Search is unavailable: the model could not be loaded.",
            retry_after=MODEL_RETRY_SECONDS,
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("API request failed: database unavailable: %s", exc)
        return APIError(
            503,
            "database_unavailable",
            "The service is briefly unavailable. Please retry shortly.",
            retry_after=DATABASE_RETRY_SECONDS,
        )
    if isinstance(exc, DataError):  # a value PostgreSQL refuses (e.g. NUL) that slipped past validation
        logger.warning("API request with a value the database refuses: %s", exc)
        return APIError(400, "invalid_value", "A value in the request cannot be processed.")
    if isinstance(exc, RequestDataTooBig):
        return APIError(413, "request_too_large", "The request body is too large.")
    if isinstance(exc, SuspiciousOperation):
        return APIError(400, "bad_request", "The request is malformed.")
    # DRF's handler answers these two too, as it maps them here, so our shape can read `detail`.
    if isinstance(exc, Http404):
        return exceptions.NotFound(*exc.args)
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied(*exc.args)
    return exc


def _message_and_details(exc: exceptions.APIException) -> tuple[str, str, dict]:
    if isinstance(exc, APIError):
        return exc.code, str(exc.detail), exc.details
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = [name for name in errors if name != "non_field_errors"]
        if fields:
            message = "Some fields are invalid: " + ", ".join(fields) + "."
        else:
            message = " ".join(str(item) for item in errors.get("non_field_errors", [])) or "The request is invalid."
        return "validation_error", message, errors
    if isinstance(exc, exceptions.Throttled):
        return (
            "throttled",
            "Too many requests for this API key. Retry after the time in Retry-After.",
            {"retry_after": exc.wait},  # type: ignore[attr-defined]  # DRF sets it; its stubs omit it
        )  # whole seconds: DRF rounds up
    detail = exc.detail
    code = getattr(detail, "code", None) or exc.default_code
    return code, str(detail), getattr(exc, "details", {})


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)  # sets WWW-Authenticate, Retry-After, rollback
    if response is None:
        logger.exception("unhandled error in API view %s", context.get("view").__class__.__name__, exc_info=exc)
        return Response(error_body("internal_error", "Something went wrong on our side."), status=500)
    assert isinstance(exc, exceptions.APIException)  # DRF answers its own (Django's 404 and 403 are mapped above)
    code, message, details = _message_and_details(exc)
    response.data = error_body(code, message, details)
    return response


def unknown_endpoint(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Paths under /api/v1/ that name no endpoint answer in the API's shape, not HTML."""
    return JsonResponse(error_body("not_found", f"No API endpoint at {request.path}."), status=404)
