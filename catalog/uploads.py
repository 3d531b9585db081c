"""The one gate every uploaded photo passes: shopper page, API, admin and import alike.

Cheap checks come first (size, magic bytes, header dimensions) so a hostile file is
refused before Pillow decodes a single pixel.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from PIL import Image, UnidentifiedImageError

try:  # HEIC/HEIF photos from iPhones
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - declared dependency
    pillow_heif = None

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "HEIF")
_SNIFFED_TYPES = (
    (b"%PDF", "a PDF document"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML/SVG document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"GIF8", "a GIF"),
    (b"BM", "a BMP bitmap"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


class UploadError(Exception):
    """A refused upload: `status` is the HTTP status, `code` is machine-readable."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str
    width: int
    height: int
    sha256: str

    @property
    def extension(self) -> str:
        return {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "HEIF": "heic"}[self.format]


def _describe(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    for magic, name in _SNIFFED_TYPES:
        if head.startswith(magic.lower()):
            return name
    if b"<svg" in head or b"<html" in head:
        return "an SVG/HTML document"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a file of an unknown type"


def check_image_upload(data: bytes) -> CheckedImage:
    """Validate raw upload bytes; raise UploadError with the right status and a reason."""
    max_bytes = settings.MAX_UPLOAD_BYTES
    max_pixels = settings.MAX_IMAGE_PIXELS
    if not data:
        raise UploadError(400, "empty_file", "The file is empty.")
    if len(data) > max_bytes:
        raise UploadError(
            413, "file_too_large", f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            width, height = image.size
            if width <= 0 or height <= 0:
                raise UploadError(400, "invalid_image", "The image has no pixels.")
            if width * height > max_pixels:
                raise UploadError(
                    400, "image_too_large",
                    f"The image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.",
                )
            image.load()  # decodes the (first) frame: truncated or corrupt data fails here
            image_format = image.format
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(400, "image_too_large", "The image has too many pixels to process safely.") from None
    except UnidentifiedImageError:
        kind = _describe(data)
        raise UploadError(
            415, "unsupported_media_type",
            f"This looks like {kind}, not a photo. Upload a JPEG, PNG, WebP, GIF or HEIC image.",
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UploadError(400, "corrupt_image", f"The image is damaged or truncated ({exc}).") from None
    return CheckedImage(
        data=data,
        format=image_format,
        width=width,
        height=height,
        sha256=hashlib.sha256(data).hexdigest(),
    )


def read_upload(file, *, max_bytes: int | None = None) -> bytes:
    """Read an uploaded file without holding more than the cap (+1 byte) in memory."""
    limit = (max_bytes or settings.MAX_UPLOAD_BYTES) + 1
    if hasattr(file, "seek"):
        file.seek(0)
    return file.read(limit)
