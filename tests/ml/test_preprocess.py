"""The one preprocessing path: odd uploads become upright 8-bit RGB on white."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.errors import ImageDecodeError
from ml.preprocess import load_image, to_tensor


def _encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def test_exif_orientation_is_applied():
    wide = Image.new("RGB", (40, 20), "white")
    wide.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    loaded = load_image(_encode(wide, "JPEG", exif=exif, quality=95))
    assert loaded.size == (20, 40)
    top = np.asarray(loaded)[2, 10]
    assert top[0] > 200
    assert top[1] < 80


def test_transparent_png_is_composited_onto_white():
    image = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    image.putpixel((5, 5), (255, 0, 0, 255))
    loaded = load_image(_encode(image, "PNG"))
    assert loaded.mode == "RGB"
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((5, 5)) == (255, 0, 0)


def test_palette_image_with_transparency_is_composited_onto_white():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    image.putpixel((4, 4), 1)
    loaded = load_image(_encode(image, "PNG", transparency=0))
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((4, 4)) == (0, 128, 0)


def test_cmyk_jpeg_becomes_rgb():
    loaded = load_image(_encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95))
    assert loaded.mode == "RGB"
    red, green, blue = loaded.getpixel((8, 8))
    assert red > 200
    assert green < 60
    assert blue < 60


def test_sixteen_bit_greyscale_keeps_its_tonal_range():
    array = np.tile(np.linspace(0, 65535, 32, dtype=np.uint16), (8, 1))
    loaded = load_image(_encode(Image.fromarray(array), "PNG"))
    assert loaded.mode == "RGB"
    grey = np.asarray(loaded)[0, :, 0]
    assert grey[0] == 0
    assert grey[-1] == 255
    assert 100 < grey[16] < 160


def test_32_bit_integer_image_is_scaled_to_8_bit():
    array = np.full((4, 4), 30000, dtype=np.int32)
    loaded = load_image(_encode(Image.fromarray(array, "I"), "TIFF"))
    assert loaded.mode == "RGB"
    assert 100 < loaded.getpixel((0, 0))[0] < 140


def test_greyscale_and_grey_with_alpha_become_rgb():
    assert load_image(_encode(Image.new("L", (4, 4), 90), "PNG")).getpixel((0, 0)) == (90, 90, 90)
    la = load_image(_encode(Image.new("LA", (4, 4), (0, 0)), "PNG"))
    assert la.getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = io.BytesIO()
    frames[0].save(data, "GIF", save_all=True, append_images=frames[1:])
    assert load_image(data.getvalue()).getpixel((4, 4))[0] > 200


def test_paths_and_file_objects_are_accepted(tmp_path):
    path = tmp_path / "ring.png"
    Image.new("RGB", (5, 5), (1, 2, 3)).save(path)
    assert load_image(path).getpixel((0, 0)) == (1, 2, 3)
    assert load_image(str(path)).size == (5, 5)
    with open(path, "rb") as handle:
        assert load_image(handle).size == (5, 5)


def test_truncated_jpeg_raises_image_decode_error():
    data = _encode(Image.effect_noise((64, 64), 40).convert("RGB"), "JPEG")
    with pytest.raises(ImageDecodeError, match="truncated"):
        load_image(data[: len(data) // 2])


@pytest.mark.parametrize("data", [b"", b"this is not an image", b"\x89PNG\r\n\x1a\n broken"])
def test_undecodable_data_raises_image_decode_error_with_a_reason(data):
    with pytest.raises(ImageDecodeError) as info:
        load_image(data)
    assert str(info.value)


def test_heic_is_readable():
    pytest.importorskip("pillow_heif")
    try:
        data = _encode(Image.new("RGB", (16, 16), (0, 200, 0)), "HEIF", quality=90)
    except (KeyError, OSError, ValueError):
        pytest.skip("no HEIF encoder in this pillow-heif build")
    loaded = load_image(data)
    assert loaded.mode == "RGB"
    assert loaded.getpixel((8, 8))[1] > 150


def test_to_tensor_resizes_crops_and_normalises():
    config = {"preprocess": {"resize": 8, "crop": 6, "mean": [0.5] * 3, "std": [0.5] * 3}}
    batch = to_tensor([Image.new("RGB", (20, 10), (255, 255, 255)), Image.new("RGB", (7, 9))], config)
    assert tuple(batch.shape) == (2, 3, 6, 6)
    assert float(batch[0].min()) == pytest.approx(1.0)
    assert float(batch[1].max()) == pytest.approx(-1.0)
