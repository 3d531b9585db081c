"""Request parsers with a size cap. DRF reads a JSON body from the stream without
Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, and multipart files have no total cap:
refuse anything larger than a photo can be before reading it. A JSON body is also
bounded in depth: Python's parser recurses, and 1,000 nested brackets were a 500."""

from __future__ import annotations

import math

from django.conf import settings
from rest_framework.parsers import JSONParser, MultiPartParser

from .errors import APIError, request_too_large

# Room for the other fields (text, filters) and the multipart/data-URL framing.
FIELDS_ALLOWANCE_BYTES = 64 * 1024
# No request of this API nests deeper than 3 (an object of filters in the body); this
# leaves room and stays far below the parser's recursion limit (~1,000).
MAX_JSON_DEPTH = 16


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


def json_depth(value: object) -> int:
    """How deeply objects and arrays nest (a scalar is 0), without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            break
        pending.extend((child, depth + 1) for child in children)
    return deepest


def too_deep() -> APIError:
    return APIError(
        400,
        "json_too_deep",
        f"The JSON body nests objects or arrays more than {MAX_JSON_DEPTH} levels deep.",
        {"max_depth": MAX_JSON_DEPTH},
    )


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        check_content_length(parser_context, max_json_bytes())
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise too_deep() from None
        if json_depth(data) > MAX_JSON_DEPTH:
            raise too_deep()
        return data


class BoundedMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        check_content_length(parser_context, max_multipart_bytes())
        return super().parse(stream, media_type, parser_context)
