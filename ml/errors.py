"""Errors the web side catches by type (e.g. a bad upload becomes a 400, not a 500)."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model's config or weights could not be found or read; the message names the file."""


class ImageDecodeError(ValueError):
    """Bytes that are not a usable image; the message is a reason a shopper can read."""
