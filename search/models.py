"""What search keeps beside the catalog: the lexical index and the merchants' synonyms.

`ProductDocument` and `SearchWord` are written by PostgreSQL triggers on `catalog_product`
and `catalog_category` (migration 0004), in the transaction that changes the product, so
the catalog never knows search exists and full-text search is never behind the data.
Django reads them and truncates them with the other tables in tests; it never writes them.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models


class ProductDocument(models.Model):
    """One product's words: title (weight A), attributes and category (B), description (C)."""

    product = models.OneToOneField(
        "catalog.Product", primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    document = SearchVectorField()
    # Distinct unaccented lower-case words of the same fields: the catalogue's vocabulary.
    words = ArrayField(models.TextField(), default=list)

    class Meta:
        indexes = [GinIndex(fields=["document"], name="search_document_gin")]

    def __str__(self) -> str:
        return f"document of product {self.product_id}"


class SearchWord(models.Model):
    """A word of the catalogue and how many products use it: what typo correction may suggest."""

    word = models.TextField(primary_key=True)
    products = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.word} ({self.products})"


class Synonym(models.Model):
    """A merchant's word for something the shop names otherwise: "kada" means "bangle".

    Applied to every query from the next search on (no restart, no re-indexing): the
    phrase is read as the words it means, for query understanding and full-text search.
    """

    phrase = models.CharField(
        max_length=100, unique=True, help_text="What shoppers type, e.g. 'kada' or 'wedding band'."
    )
    means = models.CharField(max_length=200, help_text="The shop's own words for it, e.g. 'bangle' or 'ring'.")
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["phrase"]

    def __str__(self) -> str:
        return f"{self.phrase} -> {self.means}"

    def save(self, *args, **kwargs) -> None:
        self.phrase = " ".join(self.phrase.lower().split())
        self.means = " ".join(self.means.lower().split())
        super().save(*args, **kwargs)
