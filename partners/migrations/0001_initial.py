"""Partner API keys, in their own app `partners` (they were in `search.api`, label
`search_api`). A database of the earlier layout keeps its table and every key: it is
renamed, with its content type; a new database gets the table created."""

import django.contrib.postgres.fields
from django.db import migrations, models

import partners.choices

OLD_LABEL, OLD_TABLE = "search_api", "search_api_partnerapikey"
TABLE = "partners_partnerapikey"


def adopt_or_create_table(apps, schema_editor):
    model = apps.get_model("partners", "PartnerAPIKey")
    with schema_editor.connection.cursor() as cursor:
        if OLD_TABLE in schema_editor.connection.introspection.table_names(cursor):
            schema_editor.execute(f"ALTER TABLE {OLD_TABLE} RENAME TO {TABLE}")
            schema_editor.execute(
                "UPDATE django_content_type SET app_label = %s WHERE app_label = %s", ["partners", OLD_LABEL]
            )
            schema_editor.execute("DELETE FROM django_migrations WHERE app = %s", [OLD_LABEL])
        else:
            schema_editor.create_model(model)


def give_back_table(apps, schema_editor):
    """Back to the earlier layout's name, so the previous release finds its keys."""
    schema_editor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD_TABLE}")
    schema_editor.execute("UPDATE django_content_type SET app_label = %s WHERE app_label = %s", [OLD_LABEL, "partners"])


class Migration(migrations.Migration):
    initial = True

    dependencies = [("contenttypes", "0002_remove_content_type_name")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="PartnerAPIKey",
                    fields=[
                        (
                            "id",
                            models.CharField(
                                editable=False, max_length=150, primary_key=True, serialize=False, unique=True
                            ),
                        ),
                        ("prefix", models.CharField(editable=False, max_length=8, unique=True)),
                        ("hashed_key", models.CharField(editable=False, max_length=150)),
                        ("created", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "name",
                            models.CharField(
                                default=None,
                                help_text="A free-form name for the API key. Need not be unique. 50 characters max.",
                                max_length=50,
                            ),
                        ),
                        (
                            "revoked",
                            models.BooleanField(
                                blank=True,
                                default=False,
                                help_text="If the API key is revoked, clients cannot use it anymore. (This cannot be undone.)",
                            ),
                        ),
                        (
                            "expiry_date",
                            models.DateTimeField(
                                blank=True,
                                help_text="Once API key expires, clients cannot use it anymore.",
                                null=True,
                                verbose_name="Expires",
                            ),
                        ),
                        (
                            "scopes",
                            django.contrib.postgres.fields.ArrayField(
                                base_field=models.CharField(
                                    choices=[
                                        ("search", "Search (photo/text search, similar products)"),
                                        ("catalog", "Catalog (products and categories)"),
                                    ],
                                    max_length=20,
                                ),
                                default=partners.choices.all_scopes,
                                help_text="What the key may do: search, catalog reads, or both.",
                                size=None,
                            ),
                        ),
                        (
                            "last_used_at",
                            models.DateTimeField(
                                blank=True,
                                editable=False,
                                help_text="Last successful request (to the minute).",
                                null=True,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name": "partner API key",
                        "verbose_name_plural": "partner API keys",
                        "ordering": ("-created",),
                        "abstract": False,
                    },
                )
            ]
        ),
        migrations.RunPython(adopt_or_create_table, give_back_table),
    ]
