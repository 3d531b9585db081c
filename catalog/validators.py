"""What a SKU may be: the one rule, used by the model field (so the admin and any model
form), the CSV import, the partner API's serializers and the product URL pattern.

A SKU is 1 to 64 characters from ``A-Z a-z 0-9 - _ .``, and not ``.`` or ``..`` alone.
It appears in the product's address (``/products/<sku>/``), so it must never contain a
path separator, a space, a control character or anything a browser would rewrite.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

SKU_MAX_LENGTH = 64
SKU_CHARACTERS = "letters A-Z and a-z, digits 0-9, '-', '_' and '.'"
SKU_RULE = f"A SKU is 1 to {SKU_MAX_LENGTH} characters: {SKU_CHARACTERS}; it may not be '.' or '..' alone."
# For URL patterns: no anchors, no lookarounds that depend on what follows (Django wraps it).
SKU_URL_REGEX = rf"(?!\.\.?/)[A-Za-z0-9_.\-]{{1,{SKU_MAX_LENGTH}}}"
# The same class for PostgreSQL's ~ operator (POSIX), in the model's check constraint.
SKU_DATABASE_REGEX = rf"^[A-Za-z0-9_.-]{{1,{SKU_MAX_LENGTH}}}$"
_SKU = re.compile(rf"[A-Za-z0-9_.\-]{{1,{SKU_MAX_LENGTH}}}")


class SkuConverter:
    """`<sku:sku>` in a URL pattern: matches only valid SKUs (anything else is a 404, never a
    database lookup), and reversing refuses an invalid one (NoReverseMatch) rather than
    building an address that breaks."""

    regex = SKU_URL_REGEX

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        if not is_valid_sku(value):
            raise ValueError(f"not a valid SKU: {value!r}")
        return value


def is_valid_sku(value: object) -> bool:
    return isinstance(value, str) and bool(_SKU.fullmatch(value)) and value not in (".", "..")


def validate_sku(value: object) -> None:
    """Raise ValidationError (code ``invalid_sku``) naming the rule and what broke it."""
    if is_valid_sku(value):
        return
    text = value if isinstance(value, str) else str(value)
    if not text:
        problem = "it is empty"
    elif len(text) > SKU_MAX_LENGTH:
        problem = f"it is {len(text)} characters long"
    elif text in (".", ".."):
        problem = f"{text!r} alone is not allowed"
    else:
        bad = sorted({char for char in text if not _SKU.fullmatch(char)})
        problem = "it contains " + ", ".join(repr(char) for char in bad[:5])
    raise ValidationError(f"Invalid SKU {text[:80]!r}: {problem}. {SKU_RULE}", code="invalid_sku")


def repair_sku(value: str, taken: set[str]) -> str:
    """A valid SKU for a stored one that breaks the rule: every disallowed character becomes
    '_', the result is cut to the length bound, and a numeric suffix keeps it unique among
    `taken`. Deterministic, so a migration run twice gives the same answer."""
    base = "".join(char if _SKU.fullmatch(char) else "_" for char in value)[:SKU_MAX_LENGTH]
    if base in ("", ".", ".."):
        base = "SKU" + base.replace(".", "_")
    candidate, counter = base, 1
    while candidate in taken:
        suffix = f"-{counter}"
        candidate = base[: SKU_MAX_LENGTH - len(suffix)] + suffix
        counter += 1
    return candidate
