"""The one gate every uploaded photo passes: shopper page, API, admin and import alike.

Cheap checks come first (size, magic bytes, header dimensions, the file's own structure)
so a hostile file is refused before Pillow decodes a single pixel:

- size over MAX_UPLOAD_BYTES: 413; nothing at all: 400;
- not JPEG, PNG, WebP, GIF or HEIC/HEIF (SVG, PDF, HTML, BMP, TIFF, AVIF, ZIP...): 415;
- more pixels than MAX_IMAGE_PIXELS (Pillow's decompression-bomb limit is set to the same
  number, so the embedding worker refuses exactly what this gate refuses): 400;
- another file hidden inside or after the image (JPEG+ZIP, GIFAR, HTML or PHP appended): 400;
- metadata bombs (EXIF over 64 KiB, which no camera writes; more than MAX_METADATA_BYTES of
  EXIF/XMP/ICC/comments; EXIF whose entries point outside it or number in the thousands): 400;
- truncated or corrupt pixel data: 400.

Harmless bytes a phone appends after the image (a Motion Photo's video, the extra frames
of an MPO) are dropped: `CheckedImage.data` is the image itself, and `sha256` is its hash.
"""

from __future__ import annotations

import hashlib
import io
import re
import warnings
from dataclasses import dataclass
from struct import error as StructError

from django.conf import settings
from PIL import Image, ImageFile, UnidentifiedImageError

try:  # HEIC/HEIF photos from iPhones
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - declared dependency
    pass

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "HEIF")
# How an accepted format is stored and served: the one home of both facts.
FORMAT_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "HEIF": "heic"}
EXTENSION_CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "heic": "image/heic",
}
# Pillow names a JPEG with a multi-picture index (phones' portrait/HDR shots) "MPO".
_FORMAT_ALIASES = {"MPO": "JPEG"}
# A camera's EXIF block fits one JPEG APP1 segment (64 KiB); anything larger is made up.
MAX_EXIF_BYTES = 64 * 1024
MAX_EXIF_ENTRIES = 1000
# EXIF + XMP + ICC profile + comments + unknown chunks, all together.
MAX_METADATA_BYTES = 2 * 1024 * 1024
# A ZIP is read from its end: its end-of-central-directory record sits in the last 64 KiB.
_ZIP_TAIL_BYTES = 65_557

_SNIFFED_TYPES = (
    (b"%PDF", "a PDF document"),
    (b"<svg", "an SVG drawing"),
    (b"<?xml", "an XML/SVG document"),
    (b"<!doctype html", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"GIF8", "a GIF"),
    (b"BM", "a BMP bitmap"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a program"),
)
# Another file's signature after the image ends (or markup anywhere in it) makes a polyglot.
_TRAILER_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP/JAR archive"),
    (b"PK\x01\x02", "a ZIP/JAR archive"),
    (b"PK\x05\x06", "a ZIP/JAR archive"),
    (b"%PDF", "a PDF document"),
    (b"\x7fELF", "a program"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xca\xfe\xba\xbe", "a Java class"),
)
_MARKUP = re.compile(rb"(?i)<(?:script|html|\?php|iframe|object|embed|svg)[\s>/]|<!doctype\s+html")
_JPEG_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


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
        return FORMAT_EXTENSIONS[self.format]

    @property
    def content_type(self) -> str:
        return EXTENSION_CONTENT_TYPES[self.extension]


def apply_pixel_limit() -> None:
    """Pillow's own decompression-bomb limit = ours, in every process that decodes photos
    (web and worker import this module through the admin), so no path is more lenient."""
    if Image.MAX_IMAGE_PIXELS != settings.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def _describe(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    for magic, name in _SNIFFED_TYPES:
        if head.startswith(magic.lower()):
            return name
    if b"ftypavif" in head[:16]:
        return "an AVIF image"
    if b"<svg" in head or b"<html" in head:
        return "an SVG/HTML document"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "a file of an unknown type"


# --- the file's own structure: where the image ends, how much of it is metadata ----------


@dataclass
class _Layout:
    end: int  # offset just past the image's own data (len(data) when it cannot tell)
    metadata: int = 0  # bytes of EXIF/XMP/ICC/comments/unknown chunks


def _jpeg_layout(data: bytes) -> _Layout:
    """Walk the markers the way libjpeg (and Pillow) do, to the end-of-image marker.

    Bytes between segments that are not a marker (junk before the first marker, the rest
    of a segment whose length field was edited shorter, as in Pillow's `junk_jpeg_header`,
    `truncated_app14` and `photoshop-200dpi-broken` files) are skipped by the decoder, so
    they are skipped here too (counted as metadata) instead of ending the image: stopping
    there kept only the first few hundred bytes of a photo that decodes whole.
    """
    n, i, metadata = len(data), 2, 0
    while i < n:
        # libjpeg's next_marker(): skip non-0xFF bytes, swallow 0xFF fill bytes; FF 00 is
        # stuffed data, not a marker.
        start = i
        while i < n and data[i] != 0xFF:
            i += 1
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0x00:
            metadata += i - start
            continue
        metadata += max(0, i - start - 2)  # junk before this marker's 0xFF byte(s)
        if marker == 0xD9:  # end of image
            return _Layout(i, metadata)
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue
        if i + 2 > n:
            break
        length = int.from_bytes(data[i : i + 2], "big")
        if length < 2:
            return _Layout(i, metadata)
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata += length
        i += length
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
            match = _JPEG_SCAN_END.search(data, i)
            if match is None:
                break
            i = match.start()
    return _Layout(n, metadata)


_PNG_IMAGE_CHUNKS = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"acTL",
    b"fcTL",
    b"fdAT",
    b"gAMA",
    b"cHRM",
    b"sRGB",
    b"sBIT",
    b"pHYs",
    b"bKGD",
    b"hIST",
    b"cICP",
    b"mDCv",
    b"cLLi",
}


def _png_layout(data: bytes) -> _Layout:
    n, i, metadata = len(data), 8, 0
    while i + 8 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if not kind.isalpha():
            return _Layout(i, metadata)
        if kind not in _PNG_IMAGE_CHUNKS:
            metadata += length
        i += 12 + length
        if kind == b"IEND":
            return _Layout(min(i, n), metadata)
    return _Layout(n, metadata)


def _gif_sub_blocks(data: bytes, i: int) -> tuple[int, int]:
    """Skip a chain of GIF data sub-blocks; returns (offset after it, bytes in it)."""
    n, total = len(data), 0
    while i < n:
        size = data[i]
        i += 1
        if size == 0:
            return i, total
        i += size
        total += size
    return n, total


def _gif_layout(data: bytes) -> _Layout:
    n, metadata = len(data), 0
    if n < 13:
        return _Layout(n)
    i = 13
    if data[10] & 0x80:
        i += 3 * (2 ** ((data[10] & 0x07) + 1))
    while i < n:
        block = data[i]
        if block == 0x3B:  # trailer
            return _Layout(i + 1, metadata)
        if block == 0x21 and i + 1 < n:
            label = data[i + 1]
            i, size = _gif_sub_blocks(data, i + 2)
            if label in (0xFE, 0xFF):  # comment, application
                metadata += size
        elif block == 0x2C and i + 10 <= n:
            packed = data[i + 9]
            i += 10
            if packed & 0x80:
                i += 3 * (2 ** ((packed & 0x07) + 1))
            i, _ = _gif_sub_blocks(data, i + 1)  # LZW minimum code size, then the pixels
        else:
            return _Layout(i, metadata)
    return _Layout(n, metadata)


def _webp_layout(data: bytes) -> _Layout:
    n = len(data)
    end = min(n, 8 + int.from_bytes(data[4:8], "little"))
    i, metadata = 12, 0
    while i + 8 <= end:
        kind = data[i : i + 4]
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        if kind not in (b"VP8 ", b"VP8L", b"VP8X", b"ANIM", b"ANMF", b"ALPH"):
            metadata += size
        i += 8 + size + (size & 1)
    return _Layout(end, metadata)


def _isobmff_layout(data: bytes) -> _Layout:
    """HEIF: a sequence of boxes; the first thing that is not a box ends the image."""
    n, i = len(data), 0
    while i + 8 <= n:
        size = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if not all(32 <= c < 127 for c in kind):
            return _Layout(i)
        if size == 1 and i + 16 <= n:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
        elif size == 0:
            return _Layout(n)
        if size < 8:
            return _Layout(i)
        i += size
    return _Layout(min(i, n))


_LAYOUTS = {"JPEG": _jpeg_layout, "PNG": _png_layout, "GIF": _gif_layout, "WEBP": _webp_layout, "HEIF": _isobmff_layout}


def _hidden_file(data: bytes, end: int) -> str | None:
    """What kind of second file rides along with the image, if any."""
    if _MARKUP.search(data[:4096]):  # where a browser would sniff for a page
        return "HTML/script markup"
    if b"%PDF-" in data[:1024]:  # where a PDF reader looks for its header
        return "a PDF document"
    if b"PK\x05\x06" in data[-_ZIP_TAIL_BYTES:]:  # where a ZIP reader looks for its directory
        return "a ZIP/JAR archive"
    trailer = data[end:]
    if not trailer.strip(b"\x00\t\n\r "):
        return None
    if trailer[:2] == b"\xff\xd8" or trailer[4:8] == b"ftyp":
        return None  # the extra frames of an MPO, a Motion Photo's video: dropped, never stored
    if trailer[:2] == b"MZ":
        return "a program"
    for magic, name in _TRAILER_SIGNATURES:
        if magic in trailer:
            return name
    if _MARKUP.search(trailer):
        return "HTML/script markup"
    return None


def _check_metadata(image: Image.Image, layout: _Layout) -> None:
    info_bytes = sum(
        len(image.info.get(key) or b"")
        for key in ("exif", "xmp", "icc_profile", "comment")
        if isinstance(image.info.get(key), (bytes, str))
    )
    metadata = max(layout.metadata, info_bytes)
    if metadata > MAX_METADATA_BYTES:
        raise UploadError(
            400,
            "metadata_too_large",
            f"The photo carries {metadata / 1e6:.1f} MB of metadata (EXIF, XMP, colour profile, comments); "
            f"the limit is {MAX_METADATA_BYTES / 1e6:.0f} MB. Export the photo again without metadata.",
        )
    exif = image.info.get("exif")
    if not exif:
        return
    if len(exif) > MAX_EXIF_BYTES:
        raise UploadError(
            400,
            "metadata_too_large",
            f"The photo's EXIF block is {len(exif) / 1024:.0f} KB; a camera writes at most "
            f"{MAX_EXIF_BYTES // 1024} KB. Export the photo again without metadata.",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            tags = Image.Exif()  # parsed afresh: Pillow's own copy was read (quietly) while opening
            tags.load(exif)
            entries = len(tags) + sum(len(tags.get_ifd(ifd)) for ifd in (0x8769, 0x8825) if ifd in tags)
        except Exception as exc:
            raise UploadError(
                400,
                "corrupt_metadata",
                f"The photo's EXIF metadata is malformed ({type(exc).__name__}). "
                "Export the photo again without metadata.",
            ) from None
    broken = [str(w.message) for w in caught if "exif" in str(w.message).lower() or "tag" in str(w.message).lower()]
    if broken or entries > MAX_EXIF_ENTRIES:
        reason = broken[0] if broken else f"{entries} entries"
        raise UploadError(
            400,
            "corrupt_metadata",
            f"The photo's EXIF metadata is malformed ({reason[:120]}). Export the photo again without metadata.",
        )


def check_image_upload(data: bytes) -> CheckedImage:
    """Validate raw upload bytes; raise UploadError with the right status and a reason."""
    max_bytes = settings.MAX_UPLOAD_BYTES
    max_pixels = settings.MAX_IMAGE_PIXELS
    apply_pixel_limit()
    if not data:
        raise UploadError(400, "empty_file", "The file is empty.")
    if len(data) > max_bytes:
        raise UploadError(
            413, "file_too_large", f"The file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a hostile EXIF block makes Pillow warn thousands of times
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
            assert image.format is not None  # Image.open names the format it recognised
            image_format = _FORMAT_ALIASES.get(image.format, image.format)
            width, height = image.size
            if width <= 0 or height <= 0:
                raise UploadError(400, "invalid_image", "The image has no pixels.")
            if width * height > max_pixels:
                raise UploadError(
                    400,
                    "image_too_large",
                    f"The image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.",
                )
            layout = _LAYOUTS[image_format](data)
            hidden = _hidden_file(data, layout.end)
            if hidden:
                raise UploadError(
                    400,
                    "hidden_content",
                    f"The file is an image with {hidden} hidden in it (a polyglot file). Upload the plain photo.",
                )
            _check_metadata(image, layout)
            stored = _decodable_image_bytes(data, layout.end, image)
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(
            400,
            "image_too_large",
            f"The image has too many pixels to process safely; the limit is {max_pixels / 1e6:.0f} megapixels.",
        ) from None
    except UnidentifiedImageError:
        kind = _describe(data)
        raise UploadError(
            415,
            "unsupported_media_type",
            f"This looks like {kind}, not a photo. Upload a JPEG, PNG, WebP, GIF or HEIC image.",
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, StructError) as exc:
        raise UploadError(400, "corrupt_image", f"The image is damaged or truncated ({exc}).") from None
    return CheckedImage(
        data=stored,
        format=image_format,
        width=width,
        height=height,
        sha256=hashlib.sha256(stored).hexdigest(),
    )


def _format_name(image: Image.Image) -> str:
    name = image.format or ""
    return _FORMAT_ALIASES.get(name, name)


def _decodable_image_bytes(data: bytes, end: int, image: Image.Image) -> bytes:
    """The bytes to store, decoded here: the image without what a phone appended after it
    (a Motion Photo's video, an MPO's extra frames), or every byte when the cut would not
    decode on its own. What is stored is always exactly what was decoded.

    Truncated or corrupt pixel data raises here (OSError, SyntaxError...)."""
    if end >= len(data):
        image.load()  # decodes the (first) frame: truncated or corrupt data fails here
        return data
    prefix = data[:end]
    try:
        with Image.open(io.BytesIO(prefix), formats=ALLOWED_FORMATS) as cut:
            if cut.size != image.size or _format_name(cut) != _format_name(image):
                raise ValueError("the cut image differs")
            cut.load()
        return prefix
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, StructError):
        image.load()  # the whole file must decode, or it is refused as damaged
        return data


def read_upload(file, *, max_bytes: int | None = None) -> bytes:
    """Read an uploaded file without holding more than the cap (+1 byte) in memory."""
    limit = (max_bytes or settings.MAX_UPLOAD_BYTES) + 1
    if hasattr(file, "seek"):
        file.seek(0)
    return file.read(limit)


if settings.configured:
    apply_pixel_limit()
