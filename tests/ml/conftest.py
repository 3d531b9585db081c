"""Fixtures for the framework-free ml package: the tiny model, built once per session."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_model():
    from ml.model import load_model

    return load_model("tiny-test")


@pytest.fixture
def ring_photo() -> Image.Image:
    """A small deterministic 'product photo': a gold ring-ish blob on white."""
    rng = np.random.default_rng(0)
    array = np.full((48, 64, 3), 255, dtype=np.uint8)
    array[12:36, 20:44] = (212, 175, 55)
    array += rng.integers(0, 8, array.shape, dtype=np.uint8)
    return Image.fromarray(array, "RGB")


@pytest.fixture(autouse=True)
def _media_root():
    """Overrides the project-wide autouse fixture that needs Django's ``settings``:
    the ml package is framework-free, so its tests also run with ``-p no:django``."""
    return
