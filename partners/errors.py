"""API errors with a code, a message and details. Kept apart from the exception handler
(exceptions.py): auth and throttle classes load while DRF itself is importing, so this
module must not import rest_framework.views."""

from __future__ import annotations

from rest_framework import exceptions, status

from catalog.uploads import UploadError


class APIError(exceptions.APIException):
    def __init__(
        self, status_code: int, code: str, message: str, details: dict | None = None, retry_after: int | None = None
    ) -> None:
        super().__init__(message, code)
        self.code = code
        self.status_code = status_code
        self.details = details or {}
        if retry_after is not None:
            self.wait = retry_after  # DRF's handler turns `wait` into Retry-After


def upload_rejected(error: UploadError, field: str) -> APIError:
    """The upload gate's verdict as an API error (400, 413 or 415)."""
    return APIError(error.status, error.code, error.message, {"field": field})


def request_too_large(limit: int) -> APIError:
    return APIError(
        status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        "request_too_large",
        f"The request body is larger than {limit / 1e6:.1f} MB.",
        {"limit_bytes": limit},
    )


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}
