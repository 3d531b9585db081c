"""Turn an outage of a part the page depends on into a 503 the shopper can act on, with
Retry-After, instead of a 500: the database restarting or failing over, or the search
model unable to load (weights missing or corrupt). The API maps the same errors in its
own exception handler (DRF catches them before any middleware sees them)."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from ml.errors import ModelLoadError

logger = logging.getLogger("shop_search.outage")
DATABASE_RETRY_SECONDS = 5
MODEL_RETRY_SECONDS = 60
PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>Back in a moment · shop-search</title>'
    '<p role="alert">{message}</p></html>'
)


class ServiceUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.error("database unavailable: %s %s: %s", request.method, request.path, str(exception).strip()[:300])
            message, retry = "Search is briefly unavailable. Please try again in a few seconds.", DATABASE_RETRY_SECONDS
        elif isinstance(exception, ModelLoadError):
            logger.error("search model unavailable: %s", exception)
            message, retry = "Search is unavailable while we repair it. Please try again later.", MODEL_RETRY_SECONDS
        else:
            return None
        response = HttpResponse(PAGE.format(message=message), status=503)
        response["Retry-After"] = str(retry)
        response["Cache-Control"] = "no-store"
        return response
