"""Request parsers with a size cap. DRF reads a JSON body from the stream without
Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, and multipart files have no total cap:
refuse anything larger than a photo can be before reading it."""

from __future__ import annotations

import math

from django.conf import settings
from rest_framework.parsers import JSONParser, MultiPartParser

from .errors import request_too_large

# Room for the other fields (text, filters) and the multipart/data-URL framing.
FIELDS_ALLOWANCE_BYTES = 64 * 1024


def max_json_bytes() -> int:
    """A photo at the upload limit, in base64 (4 bytes per 3), plus the other fields."""
    return math.ceil(settings.MAX_UPLOAD_BYTES / 3) * 4 + FIELDS_ALLOWANCE_BYTES


def max_multipart_bytes() -> int:
    return settings.MAX_UPLOAD_BYTES + FIELDS_ALLOWANCE_BYTES


def check_content_length(parser_context: dict | None, limit: int) -> None:
    request = (parser_context or {}).get("request")
    meta = getattr(request, "META", {})
    try:
        length = int(meta.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        raise request_too_large(limit)


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        check_content_length(parser_context, max_json_bytes())
        return super().parse(stream, media_type, parser_context)


class BoundedMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        check_content_length(parser_context, max_multipart_bytes())
        return super().parse(stream, media_type, parser_context)
