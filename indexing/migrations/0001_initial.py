"""The embedding models move from `search` to their own app, `indexing`, keeping every row.

The tables were made by search's migrations 0001-0002 (which always run first); this
renames them (and the per-version partial HNSW indexes, whose names follow the table) and
moves their content types, so admin permissions stay attached. Reversible.
"""

import django.db.models.deletion
import pgvector.django.vector
from django.db import migrations, models

TABLES = ("modelversion", "imageembedding", "productembedding")


def rename_sql(old: str, new: str) -> list[str]:
    statements = [f"ALTER TABLE {old}_{table} RENAME TO {new}_{table}" for table in TABLES]
    statements.append(
        f"""
        DO $$
        DECLARE idx record;
        BEGIN
            FOR idx IN SELECT indexname FROM pg_indexes
                       WHERE schemaname = current_schema() AND indexname ~ '^{old}_(image|product)embedding_hnsw_v[0-9]+$'
            LOOP
                EXECUTE format('ALTER INDEX %I RENAME TO %I', idx.indexname,
                               regexp_replace(idx.indexname, '^{old}_', '{new}_'));
            END LOOP;
        END $$;
        """
    )
    statements.append(
        f"UPDATE django_content_type SET app_label = '{new}' WHERE app_label = '{old}' "
        f"AND model IN ({', '.join(repr(table) for table in TABLES)})"
    )
    return statements


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("catalog", "0002_catalog_models"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("search", "0003_move_models_to_indexing"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(sql=rename_sql("search", "indexing"), reverse_sql=rename_sql("indexing", "search")),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="ModelVersion",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "version",
                            models.CharField(help_text="config name @ weights hash", max_length=120, unique=True),
                        ),
                        ("model_name", models.CharField(max_length=80)),
                        ("dim", models.PositiveIntegerField()),
                        (
                            "weights",
                            models.JSONField(blank=True, default=dict, help_text="weight overrides it was loaded with"),
                        ),
                        (
                            "state",
                            models.CharField(
                                choices=[
                                    ("backfilling", "Backfilling"),
                                    ("active", "Active (serving search)"),
                                    ("retired", "Retired"),
                                ],
                                db_index=True,
                                default="backfilling",
                                max_length=12,
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("activated_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        "ordering": ["-created_at"],
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("state", "active")),
                                fields=("state",),
                                name="one_active_model_version",
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ImageEmbedding",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "features",
                            pgvector.django.vector.VectorField(
                                help_text="raw image backbone features (model-specific width)"
                            ),
                        ),
                        ("embedding", pgvector.django.vector.VectorField(dimensions=512)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "image",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="embeddings",
                                to="catalog.productimage",
                            ),
                        ),
                        (
                            "product",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="image_embeddings",
                                to="catalog.product",
                            ),
                        ),
                        (
                            "model_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="indexing.modelversion",
                            ),
                        ),
                    ],
                    options={
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("image", "model_version"), name="one_image_embedding_per_version"
                            )
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ProductEmbedding",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "text_features",
                            pgvector.django.vector.VectorField(
                                help_text="raw text encoder features (model-specific width)"
                            ),
                        ),
                        (
                            "embedding",
                            pgvector.django.vector.VectorField(dimensions=512, help_text="fused photos + text"),
                        ),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "model_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="+",
                                to="indexing.modelversion",
                            ),
                        ),
                        (
                            "product",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="embeddings",
                                to="catalog.product",
                            ),
                        ),
                    ],
                    options={
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("product", "model_version"), name="one_product_embedding_per_version"
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
