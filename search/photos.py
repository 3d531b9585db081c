"""Shoppers' query photos, kept briefly so the result page can show them and search again
(filters, "more like this"), in a store that cannot grow past its budget.

What is kept is not the upload (up to MAX_UPLOAD_BYTES) but a JPEG rendition the size the
page shows and the model reads (QUERY_PHOTO_MAX_SIDE pixels a side, tens of KB), on the
query cache's own Redis (QUERY_CACHE_URL, never the broker's). One Lua script stores a
photo and, while all photos together exceed QUERY_PHOTO_STORE_BYTES, drops the oldest:
1,000 uploads of 7 MB cost the budget, never the broker's or the throttles' memory.

Decoding is bounded before any pixel is read: a query photo over QUERY_MAX_IMAGE_PIXELS is
refused from its header (a 50 MP PNG costs 0.7 s of CPU to decode; the model reads 260 px),
and a JPEG is decoded at the smallest DCT scale that still covers the rendition (draft mode).
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass

from django.conf import settings
from django_redis import get_redis_connection
from PIL import Image
from redis.exceptions import RedisError

from catalog.uploads import ALLOWED_FORMATS, CheckedImage, UploadError, check_image_upload
from ml.errors import ImageDecodeError
from ml.preprocess import load_image

from .query import QUERY_CACHE

logger = logging.getLogger(__name__)

RENDITION_QUALITY = 85
RENDITION_CONTENT_TYPE = "image/jpeg"
# The store's keys share one hash tag, so the script's keys sit in one slot on a cluster too.
_PREFIX = "shop-search-query:{photos}"
_INDEX = f"{_PREFIX}:index"  # sorted set: photo key -> time stored (seconds)
_SIZES = f"{_PREFIX}:sizes"  # hash: photo key -> bytes

# KEYS[1] photo, KEYS[2] index, KEYS[3] sizes. ARGV: bytes, seconds to keep, budget.
# Forgets photos that expired, stores this one, then drops the oldest while over budget.
_KEEP = """
local ttl = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local now = tonumber(redis.call('TIME')[1])
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl)) do
  redis.call('DEL', key)
  redis.call('ZREM', KEYS[2], key)
  redis.call('HDEL', KEYS[3], key)
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], string.len(ARGV[1]))
local total = 0
for _, size in ipairs(redis.call('HVALS', KEYS[3])) do total = total + tonumber(size) end
local evicted = 0
while total > budget do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not oldest or oldest == KEYS[1] then break end
  total = total - tonumber(redis.call('HGET', KEYS[3], oldest) or 0)
  redis.call('DEL', oldest)
  redis.call('ZREM', KEYS[2], oldest)
  redis.call('HDEL', KEYS[3], oldest)
  evicted = evicted + 1
end
redis.call('EXPIRE', KEYS[2], ttl)
redis.call('EXPIRE', KEYS[3], ttl)
return {total, evicted}
"""


class PhotoStoreUnavailable(RuntimeError):
    """The query cache cannot be reached: the page says so (503) instead of losing the photo."""


@dataclass(frozen=True)
class QueryPhoto:
    ref: str  # the upload's sha256: the same photo uploaded twice is one entry
    data: bytes  # the JPEG rendition
    content_type: str = RENDITION_CONTENT_TYPE


def _photo_key(ref: str) -> str:
    return f"{_PREFIX}:{ref}"


def check_query_pixels(data: bytes) -> None:
    """Refuse a query photo with more pixels than QUERY_MAX_IMAGE_PIXELS from its header,
    before the gate decodes it. What is not an image is left to the gate to name."""
    limit = settings.QUERY_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                width, height = image.size
    except Exception:  # the gate explains what is wrong with it
        return
    if width * height > limit:
        raise UploadError(
            400,
            "image_too_large",
            f"The photo is {width}x{height} pixels; photos to search with may have up to "
            f"{limit / 1e6:.0f} megapixels. A screenshot or a smaller export works as well.",
        )


def check_query_photo(data: bytes) -> CheckedImage:
    """The upload gate, with the query's lower pixel limit first (page and API alike)."""
    check_query_pixels(data)
    return check_image_upload(data)


def rendition(checked: CheckedImage, max_side: int | None = None) -> bytes:
    """An upright RGB JPEG of at most `max_side` pixels a side (transparency on white, as
    the model sees it), decoded at reduced scale where the format allows it (JPEG draft)."""
    side = max_side or settings.QUERY_PHOTO_MAX_SIDE
    image = load_image(checked.data, draft=(side, side))
    image.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=RENDITION_QUALITY, optimize=True)
    return out.getvalue()


def keep_query_photo(checked: CheckedImage) -> QueryPhoto:
    """Store the photo's rendition for QUERY_PHOTO_SECONDS (or until the budget needs room)."""
    try:
        photo = QueryPhoto(ref=checked.sha256, data=rendition(checked))
    except ImageDecodeError as exc:  # the gate passed it, the decoder could not: still the shopper's 400
        raise UploadError(400, "corrupt_image", f"The image is damaged or truncated ({exc}).") from None
    try:
        client = get_redis_connection(QUERY_CACHE)
        total, evicted = client.register_script(_KEEP)(
            keys=[_photo_key(photo.ref), _INDEX, _SIZES],
            args=[photo.data, settings.QUERY_PHOTO_SECONDS, settings.QUERY_PHOTO_STORE_BYTES],
        )
    except RedisError as exc:
        logger.error("query photo not stored: the query cache is unavailable (%s)", exc)
        raise PhotoStoreUnavailable("The photo could not be kept: search by photo is briefly unavailable.") from exc
    if evicted:
        logger.info("query photo store at %d bytes: %d oldest photos dropped", total, evicted)
    return photo


def find_query_photo(ref: str) -> QueryPhoto | None:
    """The stored rendition, or None once it expired, was dropped, or the cache is down."""
    try:
        data = get_redis_connection(QUERY_CACHE).get(_photo_key(ref))
    except RedisError as exc:
        logger.warning("query photo %s not read: the query cache is unavailable (%s)", ref, exc)
        return None
    return QueryPhoto(ref=ref, data=data) if data else None
