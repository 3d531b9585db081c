"""The embedding models now belong to `indexing` (its 0001 renames the tables): search keeps
no models. State only; the database is changed by indexing's migration."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("search", "0002_embedding_storage_plain")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="ImageEmbedding"),
                migrations.DeleteModel(name="ProductEmbedding"),
                migrations.DeleteModel(name="ModelVersion"),
            ],
        ),
    ]
