"""The demo catalogue as a real shop would write it, from the `giva-databricks` records.

The package's texts were made for training: a title is mojibake ("Mamaâ€™s"), 83
descriptions end in attribute codes ("Metal: rose rose_gold"), a few attributes disagree
with the title ("Gold Plated 925 Silver" tagged yellow gold, a "Pearl Bracelet" tagged
diamond) and every product has one piece in stock. Training reads the package as it is
(ml/data/giva.py); the shop reads it through here.
"""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

from ml.data.giva import GivaProduct, metal_name

from .choices import Gemstone, Metal, gemstone_from_text, metal_from_text
from .services import ProductData

# Runs of non-ASCII characters: mojibake is UTF-8 bytes read as Windows-1252 ("â€™" for "’").
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{2,}")
# "... eternity design. Stone: tiny colorless diamond. Metal: rose rose_gold. Design: ..."
_ATTRIBUTE_TAIL = re.compile(r"\s*\b(Stone|Metal|Design|Setting):.*\Z", re.S)
_KARAT = re.compile(r"\b(\d{2})\s*K(?:T|ARAT)?\b", re.I)
_SETTING_WORDS = {"pave": "pavé"}

# Stock a small shop would show: mostly a few pieces, one in eight sold out.
_STOCK_LEVELS = (1, 2, 3, 4, 6, 9, 12)
_OUT_OF_STOCK_ONE_IN = 8


def fix_mojibake(text: str) -> str:
    """'Mamaâ€™s' -> 'Mama’s'; text that is already right ('pavé', '’') is left alone."""

    def decode(match: re.Match) -> str:
        run = match.group()
        try:
            raw = bytes(_cp1252_byte(char) for char in run)
            return raw.decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return run

    return _NON_ASCII_RUN.sub(decode, text)


def _cp1252_byte(char: str) -> int:
    try:
        return char.encode("cp1252")[0]
    except UnicodeEncodeError:
        if ord(char) < 256:  # the five bytes cp1252 leaves undefined come through as latin-1
            return ord(char)
        raise ValueError(char) from None


def title_metal(title: str) -> str | None:
    """The metal a title names, if it names one ("Gold Plated 925 Silver" is silver)."""
    words = " " + re.sub(r"[^a-z0-9]+", " ", title.lower()) + " "
    if " silver " in words or " 925 " in words:
        return Metal.SILVER
    if " platinum " in words:
        return Metal.PLATINUM
    for phrase, metal in ((" rose gold ", Metal.ROSE_GOLD), (" white gold ", Metal.WHITE_GOLD)):
        if phrase in words:
            return metal
    if " two tone " in words:
        return Metal.TWO_TONE_GOLD
    if " yellow gold " in words:
        return Metal.YELLOW_GOLD
    return None


def title_gemstones(title: str) -> list[str]:
    """The stones a title names, in its order ("Pearl Diamond Ring" -> pearl, diamond)."""
    words = re.findall(r"[a-z]+", title.lower())
    found: list[str] = []
    for index, word in enumerate(words):
        stone = gemstone_from_text(word)
        if stone in (Gemstone.OTHER, Gemstone.NONE):  # "cubic zirconia" takes two words
            stone = gemstone_from_text(" ".join(words[index : index + 2]))
        if stone not in (Gemstone.OTHER, Gemstone.NONE) and stone not in found:
            found.append(stone)
    return found


def demo_stock(sku: str) -> int:
    """Deterministic and varied, so 'In stock only' has something to leave out."""
    number = int(hashlib.sha256(sku.encode()).hexdigest()[:8], 16)
    if number % _OUT_OF_STOCK_ONE_IN == 0:
        return 0
    return _STOCK_LEVELS[number // _OUT_OF_STOCK_ONE_IN % len(_STOCK_LEVELS)]


def _metal_text(item: GivaProduct, metal: str, title: str) -> str:
    """The metal as a jeweller writes it: '18K rose gold', '925 silver, gold plated'."""
    if metal == Metal.SILVER:
        return "925 silver, gold plated" if "gold plated" in title.lower() else "925 silver"
    if metal == Metal.PLATINUM:
        return "platinum"
    karat = _KARAT.search(f"{title} {item.material}")
    name = Metal(metal).label.lower()
    return f"{karat.group(1)}K {name}" if karat else name


def _details(item: GivaProduct, metal_words: str, stone: str, stone_from_title: bool) -> str:
    """'Stone: small colorless diamond. Metal: 18K rose gold. Design: art deco. Setting: pavé.'"""
    parts = []
    if stone != Gemstone.NONE:
        name = "gemstone" if stone == Gemstone.OTHER else Gemstone(stone).label.lower()
        # The size and colour described the stone in the photo; when the title names another
        # stone they may not fit it.
        looks = [] if stone_from_title else [item.attributes.get("stone_size"), item.stone_color]
        parts.append("Stone: " + " ".join(word for word in [*looks, name] if word and word != "none"))
    parts.append(f"Metal: {metal_words}")
    design = (item.attributes.get("design_style") or "").replace("_", " ")
    setting = (item.attributes.get("pattern") or "").replace("_", " ")
    if design and design != "none":
        parts.append(f"Design: {design}")
    if setting and setting != "none":
        parts.append(f"Setting: {_SETTING_WORDS.get(setting, setting)}")
    return ". ".join(parts) + "."


def demo_product_data(item: GivaProduct) -> ProductData:
    """One demo record as the shop shows it: decoded text, words instead of codes, the
    metal and stone the title names, and stock."""
    title = fix_mojibake(item.title)
    metal = title_metal(title) or metal_from_text(metal_name(item))
    attribute_stone = (
        gemstone_from_text(" ".join([item.stone_shape, item.stone_color, item.stone_type]))
        if item.stone_type
        else Gemstone.NONE
    )
    named = title_gemstones(title)
    stone_from_title = bool(named) and attribute_stone not in named
    stone = named[0] if stone_from_title else attribute_stone
    if stone_from_title:
        gemstone_text = Gemstone(stone).label.lower()
    elif stone == Gemstone.NONE:
        gemstone_text = ""
    else:
        stone_words = "gemstone" if item.stone_type == "other" else item.stone_type
        gemstone_text = " ".join(word for word in [item.stone_shape, item.stone_color, stone_words] if word)
    metal_text = _metal_text(item, metal, title)
    visual = fix_mojibake(_ATTRIBUTE_TAIL.sub("", item.description)).strip()
    description = f"{visual} {_details(item, metal_text, stone, stone_from_title)}".strip()
    return ProductData(
        sku=item.sku,
        title=title,
        description=description,
        category=item.category,
        metal_text=metal_text,
        gemstone_text=gemstone_text,
        price=Decimal(item.price_inr),
        currency="INR",
        stock=demo_stock(item.sku),
    )
