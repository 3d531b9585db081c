from django.apps import AppConfig


class SearchAPIConfig(AppConfig):
    """Its own app only because partner API keys are a model (scopes, last use)."""

    name = "search.api"
    label = "search_api"
    verbose_name = "Partner API"
    default_auto_field = "django.db.models.BigAutoField"
