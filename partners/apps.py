from django.apps import AppConfig


class PartnersConfig(AppConfig):
    """The partner REST API (/api/v1/): keys, scopes, throttles, errors, schema."""

    name = "partners"
    verbose_name = "Partner API"
    default_auto_field = "django.db.models.BigAutoField"
