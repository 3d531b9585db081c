"""Shopper-style views of a catalog photo, with Pillow and numpy only (no torchvision).

A catalog photo is a centred product on white studio background. A shopper's photo of
the same piece is taken on a table, a hand or fabric, tilted, off-centre, smaller or
closer, under warm or dim light, a little blurred, and JPEG-compressed by the phone or
messenger. Each step below imitates one of those; every random choice comes from the
``numpy.random.Generator`` passed in, so a seed reproduces the exact views.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

__all__ = [
    "AUGMENT_VERSION",
    "EVAL_RECIPE",
    "RECIPES",
    "TRAIN_RECIPE",
    "VIEW_SIZE",
    "shopper_view",
    "unseen_shopper_view",
]

# Bump when the augmentations change: it is part of the feature cache key.
AUGMENT_VERSION = 2
# Views are made at this size; the model's preprocessing then resizes as for any query.
VIEW_SIZE = 320
WORK_SIZE = 400

# Surfaces a ring or necklace is photographed on: skin, wood, linen, velvet, marble, paper.
_SURFACES = np.array(
    [
        (224, 172, 140),
        (198, 134, 103),
        (141, 85, 36),
        (255, 219, 172),
        (120, 82, 45),
        (160, 110, 70),
        (205, 170, 125),
        (233, 220, 200),
        (30, 30, 36),
        (20, 40, 90),
        (90, 20, 40),
        (40, 70, 50),
        (200, 200, 205),
        (150, 150, 155),
        (240, 235, 225),
        (250, 245, 240),
    ],
    dtype=np.float32,
)


TRAIN_RECIPE = "train"
EVAL_RECIPE = "unseen"  # the out-of-domain evaluation's recipe: nothing of it is trained on

# Other surfaces than training's, for the unseen recipe: stone greys, denim, green felt,
# terracotta, cream tiles, a car seat, a bathroom sink.
_UNSEEN_SURFACES = np.array(
    [
        (110, 112, 118),
        (70, 90, 130),
        (35, 90, 60),
        (180, 95, 60),
        (235, 228, 205),
        (55, 50, 48),
        (215, 222, 228),
        (175, 150, 190),
        (245, 200, 200),
        (95, 60, 60),
    ],
    dtype=np.float32,
)


def shopper_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random shopper-style photo of the product in ``image`` (RGB, VIEW_SIZE square)."""
    image = image.convert("RGB")
    image.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BICUBIC)
    if rng.random() < 0.7:
        image = _replace_background(image, rng)
    if rng.random() < 0.5:
        image = _zoom_out(image, rng)
    if rng.random() < 0.7:
        image = _rotate(image, rng)
    image = _random_resized_crop(image, rng)
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    image = _colour_and_light(image, rng)
    if rng.random() < 0.4:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.6))))
    if rng.random() < 0.3:
        image = _sensor_noise(image, rng)
    if rng.random() < 0.7:
        image = _jpeg(image, int(rng.integers(30, 90)))
    return image


def _corner_colour(image: Image.Image) -> tuple[int, int, int]:
    array = np.asarray(image)
    corners = np.stack([array[0, 0], array[0, -1], array[-1, 0], array[-1, -1]]).astype(np.float32)
    red, green, blue = (int(v) for v in np.median(corners, axis=0))
    return red, green, blue


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A plausible surface: solid, gradient, or a soft low-frequency texture."""
    width, height = size
    first = _SURFACES[rng.integers(len(_SURFACES))] + rng.normal(0, 12, 3)
    kind = rng.integers(3)
    if kind == 0:
        surface = np.broadcast_to(first, (height, width, 3)).copy()
    elif kind == 1:
        second = _SURFACES[rng.integers(len(_SURFACES))] + rng.normal(0, 12, 3)
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        t = np.cos(angle) * xs / width + np.sin(angle) * ys / height
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
        surface = first * (1 - t[..., None]) + second * t[..., None]
    else:
        coarse = rng.normal(0, 1, (max(2, height // 40), max(2, width // 40), 1)).astype(np.float32)
        small = Image.fromarray(((coarse[..., 0] + 3) * 40).clip(0, 255).astype(np.uint8), "L")
        noise = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), np.float32) / 255.0
        surface = first * (0.75 + 0.5 * noise[..., None])
    return surface.clip(0, 255)


def _replace_background(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Swap the white studio background for a surface (soft mask keeps thin chains)."""
    array = np.asarray(image, dtype=np.float32)
    brightness = array.min(axis=2)
    saturation = array.max(axis=2) - brightness
    background = ((brightness > 228) & (saturation < 18)).astype(np.uint8) * 255
    if background.mean() < 255 * 0.3:  # not a studio shot: keep its own background
        return image
    mask = Image.fromarray(background, "L").filter(ImageFilter.GaussianBlur(1.2))
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    surface = _background(image.size, rng)
    blended = array * (1 - alpha) + surface * alpha
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8), "RGB")


def _zoom_out(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The product smaller in the frame, off-centre, on padding of the background colour."""
    scale = float(rng.uniform(0.55, 0.9))
    small = image.resize(
        (max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.Resampling.BICUBIC
    )
    canvas = Image.new("RGB", image.size, _corner_colour(image))
    left = int(rng.integers(0, image.width - small.width + 1))
    top = int(rng.integers(0, image.height - small.height + 1))
    canvas.paste(small, (left, top))
    return canvas


def _rotate(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    angle = float(rng.uniform(-35, 35)) if rng.random() < 0.85 else float(rng.choice([90, 180, 270]))
    return image.rotate(angle, Image.Resampling.BICUBIC, expand=False, fillcolor=_corner_colour(image))


def _random_resized_crop(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(0.45, 1.0)
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        crop_w, crop_h = round(np.sqrt(target * aspect)), round(np.sqrt(target / aspect))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            left = int(rng.integers(0, width - crop_w + 1))
            top = int(rng.integers(0, height - crop_h + 1))
            box = (left, top, left + crop_w, top + crop_h)
            break
    else:
        side = min(width, height)
        box = ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
    return image.resize((VIEW_SIZE, VIEW_SIZE), Image.Resampling.BICUBIC, box=box)


def _colour_and_light(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Exposure, contrast, saturation, white balance (warm/cool) and gamma."""
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.65, 1.3)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.7, 1.3)))
    image = ImageEnhance.Color(image).enhance(float(rng.uniform(0.6, 1.4)))
    array = np.asarray(image, dtype=np.float32) / 255.0
    warmth = rng.normal(0, 0.06)
    tint = np.array([1 + warmth, 1 + rng.normal(0, 0.02), 1 - warmth], dtype=np.float32)
    array = np.clip(array * tint, 0, 1) ** float(np.exp(rng.normal(0, 0.15)))
    return Image.fromarray((array * 255).round().astype(np.uint8), "RGB")


def _sensor_noise(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    noisy = array + rng.normal(0, rng.uniform(2, 8), array.shape)
    return Image.fromarray(noisy.clip(0, 255).astype(np.uint8), "RGB")


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


# ---------------------------------------------------------------- the unseen recipe
# The out-of-domain evaluation must not reward learning training's augmentations by heart, so
# its shopper photos come from a second recipe with other operations and other ranges:
# other surfaces with a striped or checked texture (training: solid, gradient, blotches),
# a perspective tilt (training: in-plane rotation only), a tight close-up (35-75 % of the
# area) or a far shot on a large canvas (training: 45-100 % crops, 0.55-0.9 zoom-out), motion
# blur (training: Gaussian), a low-resolution round trip (a forwarded photo), a vignette and
# heavier JPEG (quality 12-45; training 30-90).


def unseen_shopper_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One shopper-style photo from the evaluation-only recipe (RGB, VIEW_SIZE square)."""
    image = image.convert("RGB")
    image.thumbnail((WORK_SIZE, WORK_SIZE), Image.Resampling.BICUBIC)
    # Geometry first, on the studio white, so the new surface fills every uncovered corner.
    if rng.random() < 0.6:
        image = _perspective(image, rng)
    image = _close_up_or_far(image, rng)
    if rng.random() < 0.8:
        image = _unseen_background(image, rng)
    if rng.random() < 0.5:
        image = _motion_blur(image, rng)
    if rng.random() < 0.5:
        image = _low_resolution(image, rng)
    image = _vignette(_colour_and_light(image, rng), rng)
    return _jpeg(image, int(rng.integers(12, 46)))


def _unseen_background(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    array = np.asarray(image, dtype=np.float32)
    brightness = array.min(axis=2)
    saturation = array.max(axis=2) - brightness
    background = ((brightness > 228) & (saturation < 18)).astype(np.uint8) * 255
    if background.mean() < 255 * 0.3:
        return image
    height, width = array.shape[:2]
    first = _UNSEEN_SURFACES[rng.integers(len(_UNSEEN_SURFACES))] + rng.normal(0, 10, 3)
    second = first * float(rng.uniform(0.7, 0.9))
    period = float(rng.uniform(6, 30))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    stripes = np.sin((np.cos(angle) * xs + np.sin(angle) * ys) * 2 * np.pi / period) > 0
    if rng.random() < 0.5:  # checks
        stripes ^= np.sin((-np.sin(angle) * xs + np.cos(angle) * ys) * 2 * np.pi / period) > 0
    surface = np.where(stripes[..., None], first, second)
    alpha = np.asarray(Image.fromarray(background, "L").filter(ImageFilter.GaussianBlur(1.0)), np.float32)[..., None]
    blended = array * (1 - alpha / 255.0) + surface * (alpha / 255.0)
    return Image.fromarray(blended.clip(0, 255).astype(np.uint8), "RGB")


def _perspective(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The phone held at an angle: the four corners moved inwards by up to 22 %."""
    width, height = image.size
    jitter = rng.uniform(0, 0.22, 8) * np.array([width, height] * 4)
    corners = np.array([0, 0, width, 0, width, height, 0, height], dtype=np.float64)
    inward = np.array([1, 1, -1, 1, -1, -1, 1, -1], dtype=np.float64)
    source = corners + inward * jitter
    target = corners.reshape(4, 2)
    rows = []
    for (x, y), (u, v) in zip(target, source.reshape(4, 2), strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coefficients = np.linalg.solve(np.array(rows), source)
    return image.transform(
        image.size,
        Image.Transform.PERSPECTIVE,
        tuple(float(c) for c in coefficients),
        Image.Resampling.BICUBIC,
        fillcolor=_corner_colour(image),
    )


def _close_up_or_far(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    if rng.random() < 0.5:  # close-up: 35-75 % of the area, off-centre
        side = np.sqrt(rng.uniform(0.35, 0.75))
        crop_w, crop_h = max(1, int(width * side)), max(1, int(height * side))
        left = int(rng.integers(0, width - crop_w + 1))
        top = int(rng.integers(0, height - crop_h + 1))
        return image.resize(
            (VIEW_SIZE, VIEW_SIZE), Image.Resampling.BICUBIC, box=(left, top, left + crop_w, top + crop_h)
        )
    scale = float(rng.uniform(0.35, 0.6))  # far: a small piece on a large canvas
    small = image.resize((max(1, int(VIEW_SIZE * scale)), max(1, int(VIEW_SIZE * scale))), Image.Resampling.BICUBIC)
    canvas = Image.new("RGB", (VIEW_SIZE, VIEW_SIZE), _corner_colour(image))
    canvas.paste(
        small, (int(rng.integers(0, VIEW_SIZE - small.width + 1)), int(rng.integers(0, VIEW_SIZE - small.height + 1)))
    )
    return canvas


def _motion_blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    length = int(rng.integers(3, 8))
    array = np.asarray(image, dtype=np.float32)
    horizontal = rng.random() < 0.5
    shifted = [
        np.roll(array, shift, axis=1 if horizontal else 0) for shift in range(-(length // 2), length - length // 2)
    ]
    return Image.fromarray(np.mean(shifted, axis=0).clip(0, 255).astype(np.uint8), "RGB")


def _low_resolution(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    side = int(rng.integers(90, 160))
    return image.resize((side, side), Image.Resampling.BILINEAR).resize(image.size, Image.Resampling.BILINEAR)


def _vignette(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    width, height = image.size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(xs / width - 0.5, ys / height - 0.5) / np.sqrt(0.5)
    shade = 1 - float(rng.uniform(0.1, 0.45)) * distance**2
    return Image.fromarray((np.asarray(image, np.float32) * shade[..., None]).clip(0, 255).astype(np.uint8), "RGB")


RECIPES = {TRAIN_RECIPE: shopper_view, EVAL_RECIPE: unseen_shopper_view}
