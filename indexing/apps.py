from django.apps import AppConfig


class IndexingConfig(AppConfig):
    name = "indexing"
    verbose_name = "Indexing"

    def ready(self) -> None:
        from catalog.signals import register_bulk_context

        from . import checks, receivers  # noqa: F401  (registers checks and receivers)
        from .dispatch import batched_index_tasks

        register_bulk_context(batched_index_tasks)
        checks.add_config_dirs()  # a bad folder is reported by `manage.py check`
