"""Pillow's own `Tests/images` folder (about a thousand real, odd and broken files) through
the upload gate: each one is refused with a 4xx and a reason, or accepted and stored so
that every later step can read it (the admin's dimension fields, the encoder's decode,
the gate again).

The folder comes from Pillow's sdist, for the installed version, fetched once with pip into
a cache folder (`SHOP_SEARCH_TEST_CACHE`, default ~/.cache/shop-search); set
`PILLOW_TEST_IMAGES` to use a folder you already have. Without either (no registry), the
test is skipped with the reason.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import PIL
import pytest
from django.core.files.base import ContentFile
from django.core.files.images import get_image_dimensions
from PIL import Image

from catalog.uploads import UploadError, check_image_upload

from .test_upload_corpus import assert_stored_is_the_photo

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("upload_limits")]
# The three files an outside probe found stored as a prefix of themselves.
PROBE_FINDINGS = ("junk_jpeg_header.jpg", "photoshop-200dpi-broken.jpg", "truncated_app14.jpg")


def _cache_dir() -> Path:
    base = os.environ.get("SHOP_SEARCH_TEST_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(base) / "shop-search"


def _pillow_test_images() -> Path:
    given = os.environ.get("PILLOW_TEST_IMAGES")
    if given:
        return Path(given)
    version = PIL.__version__
    folder = _cache_dir() / f"pillow-{version}-Tests-images"
    if (folder / "Tests" / "images").is_dir():
        return folder / "Tests" / "images"
    download = _cache_dir() / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    sdist = download / f"pillow-{version}.tar.gz"
    if not sdist.exists():
        try:
            pip = [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "--quiet"]
            result = subprocess.run(
                [*pip, f"pillow=={version}", "--dest", str(download)],
                capture_output=True,
                text=True,
                timeout=900,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("Pillow's sdist could not be downloaded in 15 minutes (registry slow or unreachable)")
        if result.returncode != 0 or not sdist.exists():
            pytest.skip(f"Pillow's sdist could not be downloaded from the registry: {result.stderr.strip()[-300:]}")
    prefix = f"pillow-{version}/Tests/images/"
    with tarfile.open(sdist) as archive:
        members = [member for member in archive.getmembers() if member.name.startswith(prefix) and member.isfile()]
        for member in members:
            member.name = member.name[len(f"pillow-{version}/") :]
        archive.extractall(folder, members=members, filter="data")
    return folder / "Tests" / "images"


@pytest.fixture(scope="module")
def pillow_images() -> list[Path]:
    root = _pillow_test_images()
    files = sorted(path for path in root.rglob("*") if path.is_file())
    if len(files) < 500:
        pytest.skip(f"{root} holds {len(files)} files, not Pillow's test images")
    return files


def test_every_pillow_test_image_is_refused_with_a_4xx_or_stored_readable(pillow_images):
    from ml.preprocess import load_image

    accepted, refused, problems = 0, 0, []
    for path in pillow_images:
        data = path.read_bytes()
        try:
            checked = check_image_upload(data)
        except UploadError as exc:
            refused += 1
            if not (400 <= exc.status < 500 and exc.message and exc.code):
                problems.append(f"{path.name}: refusal {exc.status} {exc.code!r}")
            continue
        except Exception as exc:  # anything else is a 500 on every upload path
            problems.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        accepted += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert_stored_is_the_photo(data, checked.data)
                # the admin's ImageField fills width/height from the stored bytes
                assert get_image_dimensions(ContentFile(checked.data)) == (checked.width, checked.height)
                assert check_image_upload(checked.data).data == checked.data
                assert load_image(checked.data).mode == "RGB"  # what the embedding worker does
        except Exception as exc:
            problems.append(f"{path.name}: stored bytes unusable: {type(exc).__name__}: {exc}"[:300])
    assert not problems, "\n".join(problems)
    assert accepted > 200
    assert refused > 200


def test_probe_findings_are_stored_whole(pillow_images):
    by_name = {path.name: path for path in pillow_images}
    for name in PROBE_FINDINGS:
        data = by_name[name].read_bytes()
        checked = check_image_upload(data)
        assert checked.data == data, name  # nothing after the image to drop: kept byte for byte
        with Image.open(io.BytesIO(checked.data)) as image:
            image.load()
