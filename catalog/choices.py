"""Enumerations of the catalog, and how free text from merchants maps onto them."""

from __future__ import annotations

import re

from django.db import models


class Metal(models.TextChoices):
    YELLOW_GOLD = "yellow_gold", "Yellow gold"
    WHITE_GOLD = "white_gold", "White gold"
    ROSE_GOLD = "rose_gold", "Rose gold"
    TWO_TONE_GOLD = "two_tone_gold", "Two-tone gold"
    PLATINUM = "platinum", "Platinum"
    SILVER = "silver", "Silver"
    OTHER = "other", "Other"


class Gemstone(models.TextChoices):
    DIAMOND = "diamond", "Diamond"
    PEARL = "pearl", "Pearl"
    SAPPHIRE = "sapphire", "Sapphire"
    RUBY = "ruby", "Ruby"
    EMERALD = "emerald", "Emerald"
    AMETHYST = "amethyst", "Amethyst"
    TOPAZ = "topaz", "Topaz"
    OPAL = "opal", "Opal"
    GARNET = "garnet", "Garnet"
    CUBIC_ZIRCONIA = "cubic_zirconia", "Cubic zirconia"
    OTHER = "other", "Other gemstone"
    NONE = "none", "No gemstone"


class Currency(models.TextChoices):
    """ISO 4217 codes of the currencies a shop may sell in (settings.SHOP_CURRENCY)."""

    INR = "INR", "Indian rupee"
    USD = "USD", "US dollar"
    EUR = "EUR", "Euro"
    GBP = "GBP", "Pound sterling"
    VND = "VND", "Vietnamese dong"
    LKR = "LKR", "Sri Lankan rupee"
    AED = "AED", "UAE dirham"
    SGD = "SGD", "Singapore dollar"
    AUD = "AUD", "Australian dollar"
    CAD = "CAD", "Canadian dollar"


# How merchants write a currency next to a price. A bare "$" is the shop's own dollar
# when it sells in one, else the US dollar (see services.parse_price).
CURRENCY_SYMBOLS = {
    "₹": Currency.INR,
    "RS.": Currency.INR,
    "RS": Currency.INR,
    "€": Currency.EUR,
    "£": Currency.GBP,
    "₫": Currency.VND,
    "Đ": Currency.VND,
    "VNĐ": Currency.VND,
    "US$": Currency.USD,
    "A$": Currency.AUD,
    "AU$": Currency.AUD,
    "C$": Currency.CAD,
    "CA$": Currency.CAD,
    "S$": Currency.SGD,
    "SG$": Currency.SGD,
}
DOLLAR_CURRENCIES = (Currency.USD, Currency.AUD, Currency.CAD, Currency.SGD)


class IndexState(models.TextChoices):
    PENDING = "pending", "Pending"
    INDEXED = "indexed", "Indexed"
    FAILED = "failed", "Failed"


def _words(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", (text or "").lower()).strip() + " "


_GEMSTONE_WORDS = [
    (Gemstone.CUBIC_ZIRCONIA, (" cubic zirconia ", " cz ", " zircon ")),
    (Gemstone.DIAMOND, (" diamond ", " diamonds ", " solitaire ", " moissanite ")),
    (Gemstone.PEARL, (" pearl ", " pearls ")),
    (Gemstone.SAPPHIRE, (" sapphire ", " sapphires ")),
    (Gemstone.RUBY, (" ruby ", " rubies ")),
    (Gemstone.EMERALD, (" emerald ", " emeralds ")),
    (Gemstone.AMETHYST, (" amethyst ",)),
    (Gemstone.TOPAZ, (" topaz ",)),
    (Gemstone.OPAL, (" opal ",)),
    (Gemstone.GARNET, (" garnet ",)),
    (Gemstone.NONE, (" none ", " no stone ", " plain ", " no gemstone ")),
]


def metal_from_text(metal: str, color: str = "") -> str:
    """Map a merchant's free text ("18K Gold", colour "rose") onto a Metal choice."""
    words = _words(f"{metal} {color}")
    if " platinum " in words or " pt950 " in words:
        return Metal.PLATINUM
    if " silver " in words or " 925 " in words or " sterling " in words:
        return Metal.SILVER
    if " two tone " in words or " mixed " in words or " tri color " in words:
        return Metal.TWO_TONE_GOLD
    if " rose " in words or " pink " in words:
        return Metal.ROSE_GOLD
    if " white " in words:
        return Metal.WHITE_GOLD
    if " gold " in words or " yellow " in words or re.search(r" \d{2}k ", words):
        return Metal.YELLOW_GOLD
    return Metal.OTHER


def gemstone_from_text(text: str) -> str:
    """Map free text ("oval blue sapphire", "CZ", "") onto a Gemstone choice."""
    words = _words(text)
    if not words.strip():
        return Gemstone.NONE
    for choice, needles in _GEMSTONE_WORDS:
        if any(needle in words for needle in needles):
            return choice
    return Gemstone.OTHER
