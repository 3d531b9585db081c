from django.apps import AppConfig


class ShopSearchConfig(AppConfig):
    """The project package as an app only so its start-up checks are registered."""

    name = "shop_search"
    verbose_name = "shop-search"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the checks
