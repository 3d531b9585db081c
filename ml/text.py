"""How a product becomes one text for the text encoder.

Order matters: the encoder truncates to its max length (``text.max_length`` tokens in
the config) by cutting the END of the text, so the title and the structured attributes
come first and always survive; a long description loses its tail, never the attributes.
"""

from __future__ import annotations

import re

from ml.constants import MAX_TEXT_CHARS

_SPACES = re.compile(r"\s+")


def _clean(value: object) -> str:
    text = "" if value is None else str(value)
    text = _SPACES.sub(" ", text.replace("_", " ")).strip()
    return "" if text.lower() in {"none", "null", "n/a"} else text


def product_text(
    title: str,
    category: str = "",
    metal: str = "",
    gemstone: str = "",
    description: str = "",
    **extra: object,
) -> str:
    """Title + attributes + description, e.g. ``"Aura Ring. Ring. Metal: rose gold. ..."``.

    ``extra`` holds further attributes (``stone_shape="round"``); empty values are skipped
    so a missing attribute never turns into the word "None".
    """
    parts = [_clean(title)]
    if _clean(category):
        parts.append(_clean(category))
    if _clean(metal):
        parts.append(f"Metal: {_clean(metal)}")
    if _clean(gemstone):
        parts.append(f"Gemstone: {_clean(gemstone)}")
    for key, value in extra.items():
        if _clean(value):
            parts.append(f"{_clean(key).capitalize()}: {_clean(value)}")
    head = ". ".join(part.rstrip(".") for part in parts if part)
    body = _clean(description)
    text = f"{head}. {body}" if head and body else head or body
    return text[:MAX_TEXT_CHARS]
