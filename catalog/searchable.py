"""The one declaration of what search reads from a product.

Every attribute a shopper can filter on, that search boosts on when the words name it, and
that goes into the product text the model embeds is one `Attribute` line in `ATTRIBUTES`.
The shopper form (search/forms.py), the API's filter fields (partners/serializers.py), the
product list's FilterSet (partners/filtersets.py), the SQL filter builder
(`search.query.Filters`), the query-word signals and boosts (search/query.py,
search/ranking.py) and the embedded product text (indexing/services.py) are all derived
from it. Adding an attribute is a model field + its migration + one line here.

`attributes()` reads the declaration named by the setting `CATALOG_SEARCHABLE_ATTRIBUTES`
(default: `ATTRIBUTES` below), so a deployment or a test can extend it.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models
from django.utils.module_loading import import_string

from .choices import Gemstone, Metal, gemstone_from_text, metal_from_text


class FilterKind(enum.StrEnum):
    CHOICE = "choice"  # one value of a TextChoices enum: `?metal=rose_gold`
    CATEGORY = "category"  # a category, by slug: `?category=ring`
    RANGE = "range"  # a numeric range: `?price_min=100&price_max=500`
    FLAG = "flag"  # a yes/no condition: `?in_stock=true`


@dataclass(frozen=True)
class Attribute:
    """One searchable attribute of `catalog.Product`.

    name: the model field (and the filter's parameter; a RANGE has `<name>_min`/`_max`).
    label: how the shop names it to shoppers ("Metal").
    kind: what kind of filter it is; None: not a filter (text only).
    choices: the enumeration of a CHOICE attribute.
    in_text: the attribute is part of the product text the model embeds ("Metal: rose gold").
    text_omit: values left out of the text ("none": a product without a stone says nothing).
    from_words: what a shopper's words name, e.g. "rose gold ring" -> "rose_gold" (None: nothing).
    boost: ranking boost when the query names the product's value (0: none).
    condition: a FLAG's SQL condition on `p` (catalog_product), and its ORM filter.
    facet: counted for the shopper's facets.
    """

    name: str
    label: str
    kind: FilterKind | None = None
    choices: type[models.TextChoices] | None = None
    in_text: bool = False
    text_omit: frozenset[str] = frozenset()
    from_words: Callable[[str], str | None] | None = None
    boost: float = 0.0
    condition: str = ""
    orm_condition: dict[str, object] | None = field(default=None, compare=False)
    facet: bool = True

    @property
    def params(self) -> tuple[str, ...]:
        """The request parameters this attribute's filter reads."""
        if self.kind is FilterKind.RANGE:
            return (f"{self.name}_min", f"{self.name}_max")
        return (self.name,) if self.kind is not None else ()

    @property
    def text_field(self) -> str:
        """The model field whose change makes the product text (and its embedding) stale."""
        return f"{self.name}_id" if self.kind is FilterKind.CATEGORY else self.name

    def choice_label(self, value: str) -> str:
        if self.choices is None:
            return value
        return str(dict(self.choices.choices).get(value, value))


def _named(parse: Callable[[str], str], *nothing: str) -> Callable[[str], str | None]:
    """A words parser that answers None for the values that mean "the words did not say"."""

    def from_words(text: str) -> str | None:
        value = parse(text)
        return None if value in nothing else value

    from_words.__name__ = f"{parse.__name__}_named"
    return from_words


ATTRIBUTES: tuple[Attribute, ...] = (
    # The category's words are the shop's own category names (search/query.py reads them).
    Attribute("category", "Category", FilterKind.CATEGORY, in_text=True, boost=0.04),
    Attribute(
        "metal",
        "Metal",
        FilterKind.CHOICE,
        Metal,
        in_text=True,
        from_words=_named(metal_from_text, Metal.OTHER),
        boost=0.03,
    ),
    Attribute(
        "gemstone",
        "Gemstone",
        FilterKind.CHOICE,
        Gemstone,
        in_text=True,
        text_omit=frozenset({Gemstone.NONE}),
        from_words=_named(gemstone_from_text, Gemstone.OTHER, Gemstone.NONE),
        boost=0.03,
    ),
    Attribute("price", "Price", FilterKind.RANGE),
    Attribute(
        "in_stock",
        "In stock only",
        FilterKind.FLAG,
        condition="p.stock > 0",
        orm_condition={"stock__gt": 0},
    ),
)

# The product text is the title, then the attributes in declaration order, then the
# description (ml/text.py: the encoder truncates the end, never the attributes).
TEXT_FIELDS = ("title", "description")


@functools.cache
def _declared(path: str) -> tuple[Attribute, ...]:
    declared = tuple(import_string(path))
    names = [attribute.name for attribute in declared]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: attribute names must be unique, got {names}")
    for attribute in declared:
        if attribute.kind is FilterKind.CHOICE and attribute.choices is None:
            raise ValueError(f"{path}: the choice attribute {attribute.name!r} needs its choices")
        if attribute.kind is FilterKind.FLAG and not (attribute.condition and attribute.orm_condition):
            raise ValueError(f"{path}: the flag {attribute.name!r} needs its SQL and ORM conditions")
    return declared


def attributes() -> tuple[Attribute, ...]:
    """The declaration in force (the setting `CATALOG_SEARCHABLE_ATTRIBUTES`)."""
    return _declared(getattr(settings, "CATALOG_SEARCHABLE_ATTRIBUTES", f"{__name__}.ATTRIBUTES"))


def filters() -> tuple[Attribute, ...]:
    return tuple(attribute for attribute in attributes() if attribute.kind is not None)


def filter_params() -> tuple[str, ...]:
    return tuple(param for attribute in filters() for param in attribute.params)


def boosted() -> tuple[Attribute, ...]:
    return tuple(attribute for attribute in attributes() if attribute.boost)


def in_text() -> tuple[Attribute, ...]:
    return tuple(attribute for attribute in attributes() if attribute.in_text)


def text_source_fields() -> tuple[str, ...]:
    """Model fields the product text is made of: a change to any makes its embedding stale."""
    return TEXT_FIELDS + tuple(attribute.text_field for attribute in in_text())


def by_name(names: Iterable[str] | None = None) -> dict[str, Attribute]:
    wanted = None if names is None else set(names)
    return {a.name: a for a in attributes() if wanted is None or a.name in wanted}
