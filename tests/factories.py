from __future__ import annotations

from decimal import Decimal

import factory

from catalog.models import Category, Product
from catalog.services import add_product_image
from catalog.uploads import check_image_upload
from tests.conftest import make_photo


def add_product_image_bytes(product: Product, data: bytes, *, position: int | None = None):
    """Attach photo bytes through the one upload gate, as every entry point does."""
    return add_product_image(product, check_image_upload(data), position=position)


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    name = factory.Iterator(["Ring", "Earring", "Necklace", "Pendant", "Bangle", "Bracelet"])
    slug = factory.LazyAttribute(lambda o: o.name.lower())


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        skip_postgeneration_save = True

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    title = factory.Sequence(lambda n: f"Product {n}")
    description = "A piece of jewelry."
    category = factory.SubFactory(CategoryFactory)
    metal = "yellow_gold"
    gemstone = "diamond"
    price = Decimal("1000.00")
    stock = 3

    @factory.post_generation
    def photos(self, create, extracted, **kwargs):
        if not create:
            return
        for seed in extracted or []:
            add_product_image_bytes(self, make_photo(seed))
