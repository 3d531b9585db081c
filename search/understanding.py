"""Words -> intent: what a shopper's query names (category, metal and colour, stone, shape,
price), the words left for full-text search, and the typo corrections made on the way.

Pure functions over a `Vocabulary` (the catalogue's words, its categories, the merchants'
synonyms), which `load_vocabulary` reads from the database for each query, so an admin edit
of a synonym applies from the next search on, in every process, without a restart.

The intent becomes strong boosts in ranking (`search.ranking.intent_match`), never a
filter: a shopper who typed "rose gold ring" still sees a white gold ring when the shop
has nothing better, ranked below the rose gold ones. The page offers each understood part
as a chip the shopper can remove or turn into a real filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from catalog.choices import Gemstone, Metal

# --- the jewelry vocabulary ------------------------------------------------------------------

# Phrase -> the category word shops use (matched against the catalogue's category names).
CATEGORY_WORDS: dict[str, str] = {
    **{w: "ring" for w in ("ring", "rings", "band", "bands", "wedding band", "wedding bands", "signet", "nhan")},
    **{
        w: "earring"
        for w in (
            "earring",
            "earrings",
            "stud",
            "studs",
            "hoop",
            "hoops",
            "jhumka",
            "jhumkas",
            "jhumki",
            "jhumkis",
            "danglers",
            "drops",
            "ear cuff",
            "ear cuffs",
            "bong tai",
        )
    },
    **{w: "necklace" for w in ("necklace", "necklaces", "chain", "chains", "choker", "chokers", "day chuyen")},
    **{w: "pendant" for w in ("pendant", "pendants", "locket", "lockets", "mat day chuyen")},
    **{w: "bracelet" for w in ("bracelet", "bracelets", "lac tay")},
    **{w: "bangle" for w in ("bangle", "bangles", "kada", "kadas", "kangan", "vong tay")},
    **{w: "brooch" for w in ("brooch", "brooches")},
    **{w: "charm" for w in ("charm", "charms")},
    **{w: "anklet" for w in ("anklet", "anklets", "payal")},
    **{w: "nose pin" for w in ("nose pin", "nose pins", "nosepin", "nose ring")},
}

METAL_COLOURS = {
    "yellow": "yellow",
    "white": "white",
    "rose": "rose",
    "pink": "rose",
    "two tone": "two-tone",
    "trang": "white",  # Vietnamese: vàng trắng = white gold, vàng hồng = rose gold
    "hong": "rose",
}
METAL_WORDS = {
    "gold": "gold",
    "golden": "gold",
    "vang": "gold",
    "platinum": "platinum",
    "pt950": "platinum",
    "silver": "silver",
    "sterling": "silver",
    "sterling silver": "silver",
    "925": "silver",
    "925 silver": "silver",
    "bac": "silver",
}
# (metal, colour) -> the catalogue's Metal values it names.
GOLD_METALS = (Metal.YELLOW_GOLD, Metal.WHITE_GOLD, Metal.ROSE_GOLD, Metal.TWO_TONE_GOLD)
PARTIAL_GOLD_CREDIT = 0.3
AMBIGUOUS_CATEGORY_CREDIT = 0.5
_METAL_CHOICES: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("gold", None): GOLD_METALS,
    ("gold", "yellow"): (Metal.YELLOW_GOLD,),
    ("gold", "white"): (Metal.WHITE_GOLD,),
    ("gold", "rose"): (Metal.ROSE_GOLD,),
    ("gold", "two-tone"): (Metal.TWO_TONE_GOLD,),
    ("platinum", None): (Metal.PLATINUM,),
    ("silver", None): (Metal.SILVER,),
}

GEMSTONE_WORDS: dict[str, str] = {
    **{w: Gemstone.DIAMOND for w in ("diamond", "diamonds", "kim cuong", "moissanite")},
    **{w: Gemstone.PEARL for w in ("pearl", "pearls", "ngoc trai")},
    **{w: Gemstone.SAPPHIRE for w in ("sapphire", "sapphires")},
    **{w: Gemstone.RUBY for w in ("ruby", "rubies")},
    **{w: Gemstone.EMERALD for w in ("emerald", "emeralds")},
    **{w: Gemstone.AMETHYST for w in ("amethyst", "amethysts")},
    **{w: Gemstone.TOPAZ for w in ("topaz", "topazes")},
    **{w: Gemstone.OPAL for w in ("opal", "opals")},
    **{w: Gemstone.GARNET for w in ("garnet", "garnets")},
    **{w: Gemstone.CUBIC_ZIRCONIA for w in ("cubic zirconia", "cz", "zircon", "zirconia", "american diamond")},
}
NO_STONE_PHRASES = (
    "without stones",
    "without stone",
    "without gemstones",
    "without gemstone",
    "no stones",
    "no stone",
    "no gemstones",
    "no gemstone",
    "stoneless",
    "plain",
)
SHAPE_WORDS: dict[str, str] = {
    **{w: w for w in ("round", "oval", "square", "pear", "heart", "princess", "cushion", "marquise", "baguette")},
    **{w: w for w in ("radiant", "asscher", "trillion", "triangle", "octagon", "hexagon")},
    "emerald cut": "emerald cut",
    "teardrop": "pear",
    "hearts": "heart",
}
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "the",
        "with",
        "in",
        "of",
        "for",
        "on",
        "to",
        "by",
        "or",
        "me",
        "show",
        "find",
        "looking",
        "want",
        "like",
        "similar",
        "my",
        "her",
        "his",
        "set",
        "some",
        "any",
        "that",
        "this",
        "is",
        "are",
        "i",
        "im",
    ]
)

CURRENCY_WORDS = {
    "₹": "INR",
    "rs": "INR",
    "inr": "INR",
    "rupees": "INR",
    "rupee": "INR",
    "$": "USD",
    "usd": "USD",
    "dollars": "USD",
    "€": "EUR",
    "eur": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "gbp": "GBP",
    "pounds": "GBP",
    "vnd": "VND",
    "dong": "VND",
}
_AMOUNT = (
    r"(?:₹|rs\.?|inr|\$|usd|€|eur|£|gbp)?\s*(\d[\d,]*(?:\.\d+)?)\s*(k|l|lakh|lakhs|m|million)?"
    r"\s*(?:₹|rs|inr|rupees?|\$|usd|dollars|€|eur|euros?|£|gbp|pounds|vnd|dong)?"
)
_PRICE_PATTERNS = [
    (re.compile(rf"\bbetween\s+{_AMOUNT}\s+(?:and|to|-)\s+{_AMOUNT}"), "between"),
    (re.compile(rf"(?<![\w.]){_AMOUNT}\s*(?:-|to)\s*{_AMOUNT}(?!\w)"), "between"),
    (re.compile(rf"\b(?:under|below|less than|cheaper than|upto|up to|within|max|at most)\s+{_AMOUNT}"), "max"),
    (re.compile(rf"(?:<=?)\s*{_AMOUNT}"), "max"),
    (re.compile(rf"\b(?:over|above|more than|from|min|at least|starting)\s+{_AMOUNT}"), "min"),
    (re.compile(rf"(?:>=?)\s*{_AMOUNT}"), "min"),
]
_MULTIPLIERS = {"k": 1_000, "l": 100_000, "lakh": 100_000, "lakhs": 100_000, "m": 1_000_000, "million": 1_000_000}
_CURRENCY_IN = re.compile(r"(₹|\$|€|£|\b(?:rs|inr|rupees?|usd|dollars|eur|euros?|gbp|pounds|vnd|dong)\b)")
_WORD = re.compile(r"[a-z0-9]+")


def builtin_phrases() -> set[str]:
    """Every word the vocabulary above knows: never 'corrected' into something else."""
    phrases = {*CATEGORY_WORDS, *METAL_WORDS, *METAL_COLOURS, *GEMSTONE_WORDS, *NO_STONE_PHRASES, *SHAPE_WORDS}
    return {word for phrase in phrases for word in phrase.split()} | set(STOPWORDS) | {"without", "no", "cut"}


# --- what the database tells us -------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    categories: Mapping[str, str] = field(default_factory=dict)  # lower-case name or slug -> slug
    category_names: Mapping[str, str] = field(default_factory=dict)  # slug -> name
    synonyms: Mapping[str, str] = field(default_factory=dict)  # phrase -> what it means
    currency: str = "INR"  # the shop's currency: prices in a query are read in it


# --- the result ----------------------------------------------------------------------------------


@dataclass
class Understood:
    """What the words ask for. Empty fields were not asked for."""

    category: str | None = None  # category slug of this shop
    # Other categories the words name ("bangle bracelet", "pendant ... earrings"): ambiguous,
    # so each named category gets the same, halved credit and the fused rank decides.
    also_categories: list[str] = field(default_factory=list)
    metal: str | None = None  # gold / silver / platinum
    metal_color: str | None = None  # yellow / white / rose / two-tone
    gemstone: str | None = None  # a Gemstone value; "none" for "plain" / "no stones"
    shape: str | None = None
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    currency: str | None = None
    # Full-text groups: each a list of alternative words, every group wanted.
    terms: list[list[str]] = field(default_factory=list)
    corrections: dict[str, str] = field(default_factory=dict)  # typed word -> catalogue word
    # The words each understood part came from ("metal": "rose gold"): what a chip removes.
    phrases: dict[str, str] = field(default_factory=dict)
    text: str = ""  # what the encoder reads: corrections and synonyms applied, price words removed
    searched: str = ""  # the shopper's words with the typo corrections applied

    @property
    def metals(self) -> tuple[str, ...]:
        """The Metal values the words name (several for plain "gold")."""
        if self.metal is None:
            return ()
        return _METAL_CHOICES.get((self.metal, self.metal_color), _METAL_CHOICES.get((self.metal, None), ()))

    def attribute_credits(self) -> dict[str, dict[str, float]]:
        """What ranking boosts, per declared attribute: {value: credit}. A colour of gold
        named gives the other golds partial credit (they are still gold)."""
        credits: dict[str, dict[str, float]] = {}
        if self.category:
            named = [self.category, *self.also_categories]
            credit = 1.0 if len(set(named)) == 1 else AMBIGUOUS_CATEGORY_CREDIT
            credits["category"] = dict.fromkeys(named, credit)
        if self.metals:
            metals: dict[str, float] = dict.fromkeys(self.metals, 1.0)
            if self.metal == "gold" and self.metal_color:
                metals = {**dict.fromkeys(GOLD_METALS, PARTIAL_GOLD_CREDIT), **metals}
            credits["metal"] = metals
        if self.gemstone:
            credits["gemstone"] = {self.gemstone: 1.0}
        return credits

    def as_dict(self) -> dict:
        """The API's `understood`: only what was understood."""
        values = {
            "category": self.category,
            "metal": self.metal,
            "metal_color": self.metal_color,
            "gemstone": str(self.gemstone) if self.gemstone else None,
            "shape": self.shape,
            "price_min": str(self.price_min) if self.price_min is not None else None,
            "price_max": str(self.price_max) if self.price_max is not None else None,
            "currency": self.currency if (self.price_min is not None or self.price_max is not None) else None,
        }
        return {key: value for key, value in values.items() if value is not None}

    def is_empty(self) -> bool:
        return not self.as_dict()


# --- parsing -----------------------------------------------------------------------------------


def normalise(text: str) -> str:
    """Lower case, accents folded (as the index folds them), one space between words."""
    import unicodedata

    folded = "".join(
        c
        for c in unicodedata.normalize("NFKD", (text or "").replace("đ", "d").replace("Đ", "D"))
        if not unicodedata.combining(c)
    )
    return " ".join(folded.lower().split())


def words(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


def _amount(number: str, multiplier: str | None) -> Decimal | None:
    try:
        value = Decimal(number.replace(",", ""))
    except InvalidOperation:
        return None
    return value * _MULTIPLIERS.get((multiplier or "").lower(), 1)


def parse_price(text: str, shop_currency: str) -> tuple[Decimal | None, Decimal | None, str | None, str, str]:
    """(min, max, currency, text without the price words, the price words)."""
    for pattern, kind in _PRICE_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        groups = match.groups()
        low = high = None
        if kind == "between":
            low, high = _amount(groups[0], groups[1]), _amount(groups[2], groups[3])
            if low is not None and high is not None and low > high:
                low, high = high, low
        elif kind == "max":
            high = _amount(groups[0], groups[1])
        else:
            low = _amount(groups[0], groups[1])
        named = _CURRENCY_IN.search(match.group(0))
        currency = CURRENCY_WORDS.get(named.group(1).rstrip(".")) if named else shop_currency
        rest = (text[: match.start()] + " " + text[match.end() :]).strip()
        return low, high, currency or shop_currency, " ".join(rest.split()), match.group(0).strip()
    return None, None, None, text, ""


def _take(phrases: Iterable[str], text: str) -> tuple[str | None, str]:
    """The longest phrase found as whole words (first by position), and the text without it."""
    padded = f" {text} "
    found = None
    for phrase in sorted(phrases, key=len, reverse=True):
        index = padded.find(f" {phrase} ")
        if index >= 0 and (found is None or index < found[1]):
            found = (phrase, index)
            if index == 0:
                break
    if found is None:
        return None, text
    phrase, index = found
    rest = padded[:index] + " " + padded[index + len(phrase) + 2 :]
    return phrase, " ".join(rest.split())


_HEAD_ENDS = (" with ", " for ", " in ", " without ", " on ")


def _take_head(phrases: Iterable[str], text: str) -> tuple[str | None, str]:
    """The category a phrase is about: English puts the head noun last before "with" ("diamond
    pendant necklace", "necklace with a leaf pendant" are necklaces), so the last category word
    before the first "with"/"for"/"in", else the first one after it."""
    padded = f" {text} "
    taken: list[tuple[int, str]] = []
    for phrase in sorted(phrases, key=len, reverse=True):
        start = padded.find(f" {phrase} ")
        while start >= 0:
            end = start + len(phrase) + 1
            if not any(start < e and s < end for s, e in ((i, i + len(p) + 1) for i, p in taken)):
                taken.append((start, phrase))
            start = padded.find(f" {phrase} ", start + 1)
    if not taken:
        return None, text
    taken.sort()
    boundary = min((i for i in (padded.find(w) for w in _HEAD_ENDS) if i >= 0), default=len(padded))
    before = [item for item in taken if item[0] < boundary]
    index, phrase = before[-1] if before else taken[0]
    rest = padded[:index] + " " + padded[index + len(phrase) + 2 :]
    return phrase, " ".join(rest.split())


def apply_synonyms(text: str, synonyms: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Each merchant phrase found in the text is read as what it means."""
    applied = {}
    padded = f" {text} "
    for phrase in sorted(synonyms, key=len, reverse=True):
        if f" {phrase} " in padded:
            padded = padded.replace(f" {phrase} ", f" {synonyms[phrase]} ")
            applied[phrase] = synonyms[phrase]
    return " ".join(padded.split()), applied


def understand(text: str, vocabulary: Vocabulary, corrections: Mapping[str, str] | None = None) -> Understood:
    """Parse a query. `corrections` (typed word -> catalogue word) come from `search.lexical`."""
    corrections = dict(corrections or {})
    typed = " ".join(corrections.get(word, word) for word in normalise(text).split())
    low, high, currency, rest, price_phrase = parse_price(typed, vocabulary.currency)
    rest, synonyms_used = apply_synonyms(" ".join(words(rest)), vocabulary.synonyms)
    understood = Understood(price_min=low, price_max=high, currency=currency, corrections=corrections)
    if price_phrase:
        understood.phrases["price"] = price_phrase
    understood.text = rest
    understood.searched = typed

    phrase, rest = _take(NO_STONE_PHRASES, rest)
    if phrase:
        understood.gemstone = Gemstone.NONE
        understood.phrases["gemstone"] = phrase
    phrase, rest_after_shape = _take(SHAPE_WORDS, rest)
    if phrase:
        understood.shape = SHAPE_WORDS[phrase]
        understood.phrases["shape"] = phrase
        rest = rest_after_shape
    phrase, rest = _take(GEMSTONE_WORDS, rest)
    if phrase and understood.gemstone is None:
        understood.gemstone = GEMSTONE_WORDS[phrase]
        understood.phrases["gemstone"] = phrase
    if phrase:
        understood.terms.append([phrase])
    rest = _metal_from(rest, understood)
    rest = _category_from(rest, vocabulary, understood, synonyms_used)
    if understood.shape:
        understood.terms.append([understood.shape])
    for word in rest.split():
        if word not in STOPWORDS and word not in {"without", "no"}:
            understood.terms.append([word])
    return understood


def _metal_from(rest: str, understood: Understood) -> str:
    metal_phrase, rest = _take(METAL_WORDS, rest)
    colour_phrase, without_colour = _take(METAL_COLOURS, rest)
    if metal_phrase:
        understood.metal = METAL_WORDS[metal_phrase]
        understood.terms.append([metal_phrase])
        understood.phrases["metal"] = metal_phrase
    if colour_phrase and understood.metal in (None, "gold"):
        # "white gold", "rose gold", or a colour beside "gold" elsewhere in the query.
        if understood.metal == "gold":
            understood.metal_color = METAL_COLOURS[colour_phrase]
            understood.phrases["metal"] = f"{colour_phrase} {metal_phrase}"
        understood.terms.append([colour_phrase])
        rest = without_colour
    return rest


def _category_from(rest: str, vocabulary: Vocabulary, understood: Understood, synonyms_used: Mapping) -> str:
    phrase, remaining = _take_head(CATEGORY_WORDS, rest)
    candidates = []
    if phrase:
        candidates = [CATEGORY_WORDS[phrase], phrase]
    else:
        # The shop's own category names ("torc", "mangalsutra") count too.
        for word in rest.split():
            for form in (word, word[:-1] if word.endswith("s") else word, word[:-2] if word.endswith("es") else word):
                if form in vocabulary.categories:
                    phrase, candidates = word, [form]
                    remaining = " ".join(w for w in rest.split() if w != word)
                    break
            if phrase:
                break
    if not phrase:
        return rest
    for candidate in candidates:
        slug = vocabulary.categories.get(candidate)
        if slug:
            understood.category = slug
            understood.phrases["category"] = phrase
            break
    # Full text: the word typed, or the shop's category name ("studs" finds "earring").
    alternatives = [phrase]
    if understood.category:
        name = normalise(vocabulary.category_names.get(understood.category, understood.category))
        if name not in alternatives:
            alternatives.append(name)
    for original, meant in synonyms_used.items():
        if meant == phrase:
            alternatives.append(original)
    understood.terms.append(alternatives)
    # Any other category the words name (the full text keeps those words as they are).
    for other in CATEGORY_WORDS:
        slug = vocabulary.categories.get(CATEGORY_WORDS[other])
        if slug and slug != understood.category and f" {other} " in f" {remaining} ":
            understood.also_categories.append(slug)
    return remaining
