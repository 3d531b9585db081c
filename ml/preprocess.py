"""The one image preprocessing path, used when indexing the catalog and at query time.

Shoppers upload whatever their phone or browser produces (HEIC, PNG with alpha, CMYK
JPEG, EXIF-rotated photos, 16-bit scans). Everything becomes an upright 8-bit RGB image
on a white background here, so the encoder sees catalog photos and queries alike.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ml.errors import ImageDecodeError

if TYPE_CHECKING:  # torch is imported where tensors are made, not at import time
    import torch

logger = logging.getLogger(__name__)

try:  # HEIC/HEIF from phones; optional so a missing wheel does not break JPEG search.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    logger.warning("pillow-heif is not installed: HEIC uploads will be rejected")

__all__ = ["BACKGROUND", "ImageDecodeError", "load_image", "to_tensor"]

BACKGROUND = (255, 255, 255)  # catalog photos are shot on white; transparency becomes white
_INTERPOLATION = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def load_image(data: bytes | str | Path | BinaryIO) -> Image.Image:
    """Decode bytes, a path or a file object into an upright RGB image.

    Raises ImageDecodeError with a human reason when the data is not a usable image.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        if len(data) == 0:
            raise ImageDecodeError("the file is empty")
        source: str | Path | BinaryIO = io.BytesIO(bytes(data))
    else:
        source = data
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(source)
            if getattr(image, "n_frames", 1) > 1:
                image.seek(0)  # animated GIF/WebP: the first frame stands for the image
            image.load()
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"no such file: {source}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not an image format we can read (use JPEG, PNG, WebP, GIF or HEIC)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError("the image has too many pixels") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated/corrupt streams as OSError ("image file is truncated").
        raise ImageDecodeError(f"the image data is truncated or corrupt ({exc})") from exc
    if image.width == 0 or image.height == 0:
        raise ImageDecodeError("the image has no pixels")
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:
        logger.debug("ignoring unreadable EXIF orientation", exc_info=True)
    return _to_rgb(image)


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, compositing transparency onto white."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _high_bit_depth_to_l(image)
        mode = image.mode
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif (
        mode in ("LA", "La", "PA", "RGBa")
        or (mode in ("L", "1") and "transparency" in image.info)
        or (mode == "RGB" and "transparency" in image.info)
    ):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        canvas = Image.new("RGBA", image.size, (*BACKGROUND, 255))
        image = Image.alpha_composite(canvas, image)
    if image.mode != "RGB":
        image = image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV, RGBA (already composited)
    return image


def _high_bit_depth_to_l(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit greyscale to 8-bit, keeping the full tonal range.

    Pillow's own convert("L") clips 16-bit values at 255, which turns most scans white.
    """
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        peak = 1.0 if array.size and np.nanmax(array) <= 1.0 else 255.0
    elif image.mode.startswith("I;16") or (array.size and array.max() > 255):
        peak = 65535.0
    else:
        peak = 255.0
    array = np.nan_to_num(array, nan=0.0)
    scaled = np.clip(np.rint(array / peak * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _preprocess_section(config: Mapping[str, Any]) -> Mapping[str, Any]:
    section: Mapping[str, Any] = config.get("preprocess", config)
    return section


def resize_and_crop(image: Image.Image, config: Mapping[str, Any]) -> Image.Image:
    """Resize the shorter side to ``resize`` then centre-crop a ``crop`` square."""
    settings = _preprocess_section(config)
    resize, crop = int(settings["resize"]), int(settings["crop"])
    resample = _INTERPOLATION[settings.get("interpolation", "bicubic")]
    if image.mode != "RGB":
        image = _to_rgb(image)
    width, height = image.size
    scale = resize / min(width, height)
    new_size = (max(crop, round(width * scale)), max(crop, round(height * scale)))
    if new_size != image.size:
        image = image.resize(new_size, resample)
    left = (new_size[0] - crop) // 2
    top = (new_size[1] - crop) // 2
    return image.crop((left, top, left + crop, top + crop))


def to_tensor(images: Sequence[Image.Image], config: Mapping[str, Any]) -> torch.Tensor:
    """Batch of images -> normalised float32 tensor (N, 3, crop, crop).

    ``config`` is a model config (its ``preprocess`` section is used) or that section.
    """
    import torch

    settings = _preprocess_section(config)
    mean = np.asarray(settings["mean"], dtype=np.float32).reshape(1, 1, 3)
    std = np.asarray(settings["std"], dtype=np.float32).reshape(1, 1, 3)
    arrays = [(np.asarray(resize_and_crop(image, settings), dtype=np.float32) / 255.0 - mean) / std for image in images]
    if not arrays:
        crop = int(settings["crop"])
        return torch.zeros((0, 3, crop, crop), dtype=torch.float32)
    batch = np.stack(arrays).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
