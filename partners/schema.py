"""OpenAPI pieces drf-spectacular cannot infer: the API key scheme and the error responses."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

from .serializers import ErrorSerializer

ERROR_DESCRIPTIONS = {
    400: "Invalid fields, malformed JSON or base64, or a damaged image.",
    401: "No API key, or an invalid, revoked or expired one.",
    403: "The API key lacks the scope this endpoint needs.",
    404: "No such product (or endpoint).",
    413: "The photo or the request body is too large.",
    415: "The file is not a supported image, or the Content-Type is not accepted.",
    429: "Too many requests for this API key; see Retry-After.",
    503: "Search or the database is briefly unavailable; see Retry-After.",
}
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    location=OpenApiParameter.HEADER,
    response=[429, 503],
    description="Seconds to wait before retrying.",
)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """Every key-protected endpoint can answer 401, 403, 429 and 503, plus `statuses`."""
    codes = sorted({401, 403, 429, 503, *statuses})
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in codes}


class APIKeyScheme(OpenApiAuthenticationExtension):
    target_class = "partners.auth.APIKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`, e.g. `Authorization: Api-Key AbCd1234.xxxxxxxx`.",
        }
