from django.apps import AppConfig
from django.db.models.signals import post_delete


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the checks
        from .models import ProductImage
        from .photos import photo_deleted

        post_delete.connect(photo_deleted, sender=ProductImage, dispatch_uid="catalog.photo_file_deleted")
