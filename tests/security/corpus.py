"""Hostile and awkward uploads, generated in code (no binaries committed), each with the
verdict the upload gate must give. Used by the corpus tests on every upload surface.

`build_corpus(max_bytes, max_pixels)` makes the files for the limits in force, so the
size and pixel cases sit just past whatever the settings say.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw

from tests.conftest import make_photo


@dataclass(frozen=True)
class Sample:
    name: str
    filename: str  # what the client says the file is called
    data: bytes
    status: int  # 200: accepted; else the HTTP status of the refusal
    code: str | None = None  # UploadError.code
    reason: str = ""  # words the refusal must contain (case-insensitive)
    format: str | None = None  # accepted: the format the gate reports
    size: tuple[int, int] | None = None  # accepted: (width, height) as stored

    @property
    def accepted(self) -> bool:
        return self.status == 200


# --- building blocks ------------------------------------------------------------------------


def _image(size=(160, 120), mode="RGB", seed=0) -> Image.Image:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    w, h = size
    draw.ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], outline=(200, 150, 40 + seed), width=6)
    draw.rectangle([0, 0, w // 6, h // 6], fill=(30, 90, 200))
    return image.convert(mode) if mode != "RGB" else image


def _save(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_insert(png: bytes, *chunks: bytes) -> bytes:
    """Insert chunks right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    return png[:33] + b"".join(chunks) + png[33:]


def _png_header_only(width: int, height: int, bit_depth: int = 1, colour: int = 0, rows: int = 64) -> bytes:
    """A PNG whose header claims width x height; the pixel data is a few compressed zero rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    row = b"\x00" + bytes((width * bit_depth + 7) // 8)
    idat = zlib.compress(row * rows, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _tiff_ifd(entries: list[tuple[int, int, int, int]], next_ifd: int = 0) -> bytes:
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        out += struct.pack("<HHII", tag, kind, count, value)
    return out + struct.pack("<I", next_ifd)


def _jpeg_with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    return jpeg[:2] + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _jpeg_junk_after_comment(jpeg: bytes) -> bytes:
    """Like Pillow's `junk_jpeg_header.jpg`: text between segments, before the tables; the
    decoder skips it."""
    comment = b"CREATOR: gd-jpeg v1.0 (using IJG JPEG v62), quality = 60"
    return jpeg[:2] + bytes([0xFF, 0xFE]) + struct.pack(">H", len(comment) + 2) + comment + b"hello" + jpeg[2:]


def _jpeg_short_app14(jpeg: bytes) -> bytes:
    """Like Pillow's `truncated_app14.jpg`: an Adobe APP14 segment whose length field says one
    byte less than it holds (no room for the colour transform byte, which is left over)."""
    adobe = b"Adobe" + b"\x00\x64" + b"\x40\x00" + b"\x00\x00"
    return jpeg[:2] + bytes([0xFF, 0xEE]) + struct.pack(">H", len(adobe) + 2) + adobe + b"\x01" + jpeg[2:]


def _jpeg_short_photoshop_app13(jpeg: bytes) -> bytes:
    """Like Pillow's `photoshop-200dpi-broken.jpg`: a Photoshop APP13 (200 dpi resolution
    resource) whose length was edited smaller, leaving the tail of it between segments."""
    resolution = struct.pack(">IHHIHH", 200 << 16, 1, 1, 200 << 16, 1, 1)
    resources = (
        b"8BIM"
        + struct.pack(">HHI", 0x03ED, 0, len(resolution))
        + resolution
        # the resource that is cut off: a print-flags block
        + b"8BIM"
        + struct.pack(">HHI", 0x0406, 0, 8)
        + bytes([0, 0, 0, 7, 0, 4, 0, 1])
    )
    payload = b"Photoshop 3.0\x00" + resources
    cut = 20
    return jpeg[:2] + bytes([0xFF, 0xED]) + struct.pack(">H", len(payload) + 2 - cut) + payload + jpeg[2:]


def _zip(names: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in names.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _exif_rotated_jpeg() -> bytes:
    """A landscape 160x120 photo whose EXIF says 'rotate 90° clockwise' (orientation 6)."""
    image = _image((160, 120))
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(image, "JPEG", exif=exif.tobytes())


def _mpo() -> bytes:
    return _save(_image((160, 120)), "MPO", save_all=True, append_images=[_image((160, 120), seed=90)])


def _pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
    b'<script>alert(document.cookie)</script><circle cx="50" cy="50" r="40" fill="gold"/></svg>'
)


def build_corpus(max_bytes: int, max_pixels: int) -> list[Sample]:
    jpeg = _save(_image(), "JPEG", quality=90)
    png = _save(_image(), "PNG")
    gif = _save(_image(mode="P"), "GIF")
    frames = [_image(seed=s).convert("P") for s in (0, 60, 120)]
    animated_gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80, loop=0)
    animated_webp = _save(_image(), "WEBP", save_all=True, append_images=[_image(seed=60)], duration=80)
    palette = _image(mode="P")
    palette.info["transparency"] = 0
    grey16 = Image.fromarray(__import__("numpy").linspace(0, 65535, 160 * 120, dtype="uint16").reshape(120, 160))
    side = int(max_pixels**0.5) + 50  # just past the pixel cap, well under 2x (Pillow's hard error)
    huge_exif = b"Exif\x00\x00" + _tiff_ifd([(0x010E + i % 40, 2, 0x7FFFFFF0, 8) for i in range(5000)])
    many_tags = b"Exif\x00\x00" + _tiff_ifd([(0x9000 + i, 3, 1, 1) for i in range(3000)])
    ztxt_bomb = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * 8_000_000, 9))
    exif_chunk = _png_chunk(b"eXIf", b"II*\x00\x08\x00\x00\x00" + b"\x00" * 200_000)
    itxt_flood = b"".join(_png_chunk(b"tEXt", b"Comment\x00" + b"x" * 250_000) for _ in range(10))
    jar = _zip(
        {"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\nMain-Class: Evil\n", "Evil.class": b"\xca\xfe\xba\xbe"}
    )
    html = b"<!doctype html><html><body><script>alert(document.domain)</script></body></html>"
    bmp = _save(_image(), "BMP")
    heic = _save(_image((160, 120)), "HEIF")
    avif = _save(_image(), "AVIF")

    return [
        # --- accepted: what phones and browsers really send --------------------------------
        Sample("jpeg-baseline", "ring.jpg", jpeg, 200, format="JPEG", size=(160, 120)),
        Sample("jpeg-progressive", "ring.jpg", _save(_image(), "JPEG", progressive=True), 200, format="JPEG"),
        Sample("jpeg-cmyk", "ring.jpg", _save(_image(mode="CMYK"), "JPEG"), 200, format="JPEG"),
        Sample("jpeg-greyscale", "ring.jpeg", _save(_image(mode="L"), "JPEG"), 200, format="JPEG"),
        Sample("jpeg-exif-rotated", "IMG_0001.JPG", _exif_rotated_jpeg(), 200, format="JPEG", size=(160, 120)),
        Sample("jpeg-mpo-phone", "portrait.jpg", _mpo(), 200, format="JPEG", size=(160, 120)),
        Sample("jpeg-zero-padding-after-end", "ring.jpg", jpeg + b"\x00" * 512, 200, format="JPEG"),
        # the decoder skips bytes between segments; the whole photo must be stored, not a prefix
        Sample("jpeg-junk-between-segments", "junk.jpg", _jpeg_junk_after_comment(jpeg), 200, format="JPEG"),
        Sample("jpeg-short-app14", "adobe.jpg", _jpeg_short_app14(jpeg), 200, format="JPEG", size=(160, 120)),
        Sample("jpeg-short-photoshop-app13", "ps.jpg", _jpeg_short_photoshop_app13(jpeg), 200, format="JPEG"),
        Sample("png-rgba", "ring.png", _save(_image(mode="RGBA"), "PNG"), 200, format="PNG"),
        Sample("png-16-bit-grey", "scan.png", _save(grey16, "PNG"), 200, format="PNG"),
        Sample("png-palette-transparency", "ring.png", _save(palette, "PNG"), 200, format="PNG"),
        Sample("png-named-jpg", "ring.jpg", png, 200, format="PNG"),  # we sniff, never trust the name
        Sample("webp-lossy", "ring.webp", _save(_image(), "WEBP", quality=80), 200, format="WEBP"),
        Sample("webp-animated", "ring.webp", animated_webp, 200, format="WEBP"),
        Sample("gif-animated", "ring.gif", animated_gif, 200, format="GIF"),
        Sample("heic-iphone", "IMG_0002.HEIC", heic, 200, format="HEIF", size=(160, 120)),
        # --- refused: nothing, too much --------------------------------------------------------
        Sample("zero-bytes", "ring.jpg", b"", 400, "empty_file", "empty"),
        Sample(
            "over-size-limit", "big.jpg", jpeg + b"\x00" * (max_bytes + 1 - len(jpeg)), 413, "file_too_large", "limit"
        ),
        Sample("over-pixel-limit", "wide.png", _png_header_only(side, side), 400, "image_too_large", "megapixels"),
        Sample(
            "decompression-bomb-png", "bomb.png", _png_header_only(60_000, 60_000), 400, "image_too_large", "pixels"
        ),
        # --- refused: broken ------------------------------------------------------------------
        Sample("truncated-jpeg", "ring.jpg", jpeg[: len(jpeg) // 2], 400, "corrupt_image", "truncated"),
        Sample("truncated-png", "ring.png", png[: len(png) // 2], 400, "corrupt_image", "truncated"),
        Sample("jpeg-header-only", "ring.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", 400, "corrupt_image", "damaged"),
        # --- refused: not a photo --------------------------------------------------------------
        Sample(
            "text-named-jpg",
            "ring.jpg",
            b"hello, I am text, not a ring\n" * 20,
            415,
            "unsupported_media_type",
            "text file",
        ),
        Sample("svg", "ring.svg", SVG, 415, "unsupported_media_type", "SVG"),
        Sample("svg-named-png", "ring.png", SVG, 415, "unsupported_media_type", "SVG"),
        Sample("html-named-jpg", "ring.jpg", html, 415, "unsupported_media_type", "HTML"),
        Sample("pdf", "catalog.pdf", _pdf(), 415, "unsupported_media_type", "PDF"),
        Sample("zip-named-jpg", "ring.jpg", jar, 415, "unsupported_media_type", "ZIP"),
        Sample("bmp-named-png", "ring.png", bmp, 415, "unsupported_media_type", "BMP"),
        Sample("tiff", "ring.tif", _save(_image(), "TIFF"), 415, "unsupported_media_type", "TIFF"),
        Sample("avif", "ring.avif", avif, 415, "unsupported_media_type", "AVIF"),
        # --- refused: polyglots ----------------------------------------------------------------
        Sample("jpeg-plus-zip", "ring.jpg", jpeg + jar, 400, "hidden_content", "ZIP"),
        Sample("gifar", "ring.gif", gif + jar, 400, "hidden_content", "ZIP"),
        Sample("png-plus-html", "ring.png", png + html, 400, "hidden_content", "markup"),
        Sample("jpeg-plus-php", "ring.jpg", jpeg + b"<?php system($_GET['c']); ?>", 400, "hidden_content", "markup"),
        Sample(
            "jpeg-html-in-comment", "ring.jpg", _jpeg_with_segment(jpeg, 0xFE, html), 400, "hidden_content", "markup"
        ),
        Sample("jpeg-plus-pdf", "ring.jpg", jpeg + _pdf(), 400, "hidden_content", "PDF"),
        # --- refused: metadata bombs -----------------------------------------------------------
        Sample(
            "exif-bomb-huge-counts",
            "ring.jpg",
            _jpeg_with_segment(jpeg, 0xE1, huge_exif[:65000]),
            400,
            "corrupt_metadata",
            "EXIF",
        ),
        Sample(
            "exif-bomb-3000-tags",
            "ring.jpg",
            _jpeg_with_segment(jpeg, 0xE1, many_tags),
            400,
            "corrupt_metadata",
            "EXIF",
        ),
        Sample("png-exif-200kb", "ring.png", _png_insert(png, exif_chunk), 400, "metadata_too_large", "EXIF"),
        Sample("png-ztxt-bomb", "ring.png", _png_insert(png, ztxt_bomb), 400, "corrupt_image", "too large"),
        Sample("png-2.5mb-of-text", "ring.png", _png_insert(png, itxt_flood), 400, "metadata_too_large", "metadata"),
    ]


def accepted(corpus: list[Sample]) -> list[Sample]:
    return [sample for sample in corpus if sample.accepted]


def refused(corpus: list[Sample]) -> list[Sample]:
    return [sample for sample in corpus if not sample.accepted]


__all__ = ["Sample", "accepted", "build_corpus", "make_photo", "refused"]
