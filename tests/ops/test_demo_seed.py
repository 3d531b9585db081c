"""Start-up seeds the demo catalogue once; the merchant's edits and deletions stay."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from catalog.models import DemoCatalogSeed, Product
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def seed(limit: int = 3) -> str:
    out = StringIO()
    call_command("load_demo_catalog", "--seed", "--limit", str(limit), stdout=out, verbosity=0)
    return out.getvalue()


def test_deleted_and_edited_demo_products_survive_the_next_start_up_seeding():
    assert "created 3" in seed()
    deleted, edited, _untouched = Product.objects.order_by("sku")
    deleted.delete()
    edited.title, edited.price = "Merchant's own title", Decimal("12345.00")
    edited.save()

    again = seed()

    assert "seeded once" in again
    assert not Product.objects.filter(sku=deleted.sku).exists()
    edited.refresh_from_db()
    assert (edited.title, edited.price) == ("Merchant's own title", Decimal("12345.00"))
    assert Product.objects.count() == 2
    assert DemoCatalogSeed.objects.get().products == 3


def test_a_catalogue_emptied_by_the_merchant_is_not_seeded_again():
    seed()
    Product.objects.all().delete()
    seed()
    assert Product.objects.count() == 0


def test_demo_catalog_off_starts_an_empty_shop(settings):
    settings.DEMO_CATALOG = False
    assert "DEMO_CATALOG=0" in seed()
    assert Product.objects.count() == 0
    assert not DemoCatalogSeed.objects.exists()


def test_a_shop_that_already_has_products_gets_no_demo_products():
    ProductFactory(sku="MERCHANT-1")
    assert "already has products" in seed()
    assert list(Product.objects.values_list("sku", flat=True)) == ["MERCHANT-1"]
    seed()
    assert Product.objects.count() == 1


def test_an_interrupted_seed_resumes_without_touching_what_it_already_made():
    DemoCatalogSeed.objects.create()  # a first start-up stopped after one product
    seed(limit=1)
    DemoCatalogSeed.objects.update(finished_at=None)
    first = Product.objects.get()
    first.title = "Edited meanwhile"
    first.save()
    seed(limit=3)
    first.refresh_from_db()
    assert first.title == "Edited meanwhile"
    assert Product.objects.count() == 3


def test_explicit_load_demo_catalog_restores_the_demo_products():
    seed()
    Product.objects.order_by("sku").first().delete()
    out = StringIO()
    call_command("load_demo_catalog", "--limit", "3", stdout=out, verbosity=0)
    assert "created 1" in out.getvalue()
    assert Product.objects.count() == 3
